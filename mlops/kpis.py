"""Model KPIs: KPIs declared with `predictions: <model spec>` (e.g. "trucks at risk"), computed from the champion's
batch predictions instead of a dbt model.

dbt builds before the model assets run, so a dbt model over the predictions would always be one batch late (and
would close a loop in the asset graph). Instead the `predictions` asset publishes each model KPI's table (the KPI
table's columns: grain, period, value) as the gold snapshot `gold/<uc>/kpi_<id>` right after scoring, and the
catalogue file lists the declaration next to the dbt KPIs (the gold publish asset passes `catalog_entries` to
`foundation.engine.dbt.publish.write_catalog`: the data engine does not know mlops), so
`foundation kpi list|show`, `/v1/kpis` and the catalogue page read it like any other KPI.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from foundation.core.workspace import Workspace, load_kpis, load_model_specs
from foundation.engine.dbt.publish import gold_uri
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import open_delta, storage_options_of, write_delta
from foundation.specs.kpi import KpiRef
from foundation.specs.model import ModelRef
from mlops.inference import at_risk, at_risk_sql, predictions_uri

PREDICTIONS_RELATION = "predictions"  # what the catalogue shows as the KPI's SQL source


def model_kpis(kpis: list[KpiRef], ref: ModelRef) -> list[KpiRef]:
    """The KPIs of `ref`'s use case computed from its predictions."""
    return [k for k in kpis if k.usecase == ref.usecase and k.spec.predictions == ref.spec.name]


def _time_is_date(schema_fields: list[Any], column: str) -> bool:
    kind = str(next(f.type for f in schema_fields if f.name == column)).lower()
    return "date" in kind or "timestamp" in kind


def model_kpi_sql(kpi: KpiRef, ref: ModelRef, relation: str = PREDICTIONS_RELATION, time_is_date: bool = True) -> str:
    return at_risk_sql(relation, ref.spec.entity[0], ref.spec.time, time_is_date, kpi.spec.grains)


def publish_model_kpis(workspace: Workspace, ref: ModelRef, kpis: list[KpiRef] | None = None) -> dict[str, int]:
    """Overwrite the gold snapshot of every KPI on `ref`'s predictions (one new Delta version each); KPI id -> rows.

    Nothing to publish before the first batch of predictions."""
    kpis = model_kpis(load_kpis(workspace.root).kpis if kpis is None else kpis, ref)
    uri = predictions_uri(workspace, ref)
    try:
        fields = open_delta(workspace, uri).schema().fields
    except TableNotFoundError:
        return {}
    published = {}
    con = duckdb.connect()
    try:
        relation = delta_relation_sql(con, uri, storage_options=storage_options_of(workspace))
        for kpi in kpis:
            sql = model_kpi_sql(kpi, ref, relation, _time_is_date(fields, ref.spec.time))
            table = con.sql(sql).to_arrow_table()
            uri_out = gold_uri(workspace, kpi.usecase, kpi.spec.model_name)
            write_delta(workspace, uri_out, table, mode="overwrite", schema_mode="overwrite")
            published[kpi.spec.id] = table.num_rows
    finally:
        con.close()
    return published


def catalog_entries(workspace: Workspace) -> list[dict[str, Any]]:
    """Catalogue entries of the model KPIs and of every model's realised-performance KPIs (same keys as the dbt
    KPIs': definition, SQL, lineage)."""
    scan = load_kpis(workspace.root)
    models = {(m.usecase, m.spec.name): m for m in load_model_specs(workspace.root).models}
    entries = [e for ref in models.values() for e in realised_catalog_entries(workspace, ref)]
    for kpi in scan.kpis:
        ref = models.get((kpi.usecase, kpi.spec.predictions or ""))
        if ref is None:
            continue
        relative = _relative(kpi.path, workspace.root)
        entries.append(
            {
                **kpi.spec.model_dump(mode="json", exclude_none=True),
                "usecase": kpi.usecase,
                "yaml": relative,
                "kind": "predictions",
                "dbt_model": kpi.spec.model_name,
                "dbt_unique_id": None,
                "relation": None,
                "gold_uri": gold_uri(workspace, kpi.usecase, kpi.spec.model_name),
                "sql": model_kpi_sql(kpi, ref),
                "upstream_models": [ref.spec.feature_table],
                "lineage": [
                    {
                        "source": f"ml/{ref.usecase}/{ref.spec.name}/predictions",
                        "yaml": _relative(ref.path, workspace.root),
                        "owner": ref.spec.owner,
                        "bronze_table": None,
                    }
                ],
                "columns": ["grain", "period", "value"],
            }
        )
    return entries


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def latest_model_kpis(workspace: Workspace, ref: ModelRef) -> list[dict[str, Any]]:
    """Each model KPI of `ref` at its latest day (e.g. trucks at risk), from the champion's batch predictions:
    what `foundation train` prints under the comparison. Empty before the first batch or without a model KPI."""
    kpis = model_kpis(load_kpis(workspace.root).kpis, ref)
    latest = at_risk(workspace, ref, last=1) if kpis else []
    if not latest:
        return []
    day = latest[0]
    return [
        {"id": k.spec.id, "label": k.spec.label, "unit": k.spec.unit, "period": day["period"], "value": day["value"]}
        for k in kpis
    ]


# -- realised performance: the comparison to reality, as KPIs of the catalogue -------------------------------------

REALISED_FIGURES = ("precision", "recall")
REALISED_ERRORS = ("mae", "rmse")  # task: regression (the bias stays on the dashboard: neither higher nor lower wins)


def realised_figures(ref: ModelRef) -> tuple[str, ...]:
    return REALISED_ERRORS if ref.spec.is_regression else REALISED_FIGURES


def realised_kpi_id(ref: ModelRef, figure: str) -> str:
    return f"{ref.spec.name}_realised_{figure}"


def realised_kpi_rows(
    weekly: list[dict[str, Any]], figure: str, validation: float | None, scale: float = 100
) -> list[dict[str, Any]]:
    """Pure: one KPI table (grain, period, figure, value) per week with known outcomes: the total series
    (figure NULL) is the realised value; `figure` splits it into 'realised' and 'validation' (the champion's
    figure on its validation rows), so the catalogue charts reality against what training promised. `scale`:
    100 for a share in % (precision, recall), 1 for an error in the target's unit (MAE, RMSE)."""
    rows = []
    for week in weekly:
        value = week.get(figure)
        period = date.fromisoformat(str(week["week"])[:10])
        realised = None if value is None else round(scale * float(value), 2)
        rows += [
            {"grain": "week", "period": period, "figure": None, "value": realised},
            {"grain": "week", "period": period, "figure": "realised", "value": realised},
        ]
        if validation is not None:
            rows.append(
                {"grain": "week", "period": period, "figure": "validation", "value": round(scale * validation, 2)}
            )
    return rows


def _realised_schema() -> pa.Schema:
    return pa.schema(
        [("grain", pa.string()), ("period", pa.date32()), ("figure", pa.string()), ("value", pa.float64())]
    )


def publish_realised_kpis(
    workspace: Workspace, ref: ModelRef, weekly: list[dict[str, Any]], validation: dict[str, float | None]
) -> dict[str, int]:
    """Overwrite the gold snapshot of the model's realised precision and recall KPIs (a regression's realised MAE
    and RMSE); KPI id -> rows."""
    published = {}
    scale = 1 if ref.spec.is_regression else 100
    for figure in realised_figures(ref):
        kpi_id = realised_kpi_id(ref, figure)
        rows = realised_kpi_rows(weekly, figure, validation.get(figure), scale)
        table = pa.Table.from_pylist(rows, schema=_realised_schema())
        uri = gold_uri(workspace, ref.usecase, f"kpi_{kpi_id}")
        write_delta(workspace, uri, table, mode="overwrite", schema_mode="overwrite")
        published[kpi_id] = len(rows)
    return published


def realised_catalog_entries(workspace: Workspace, ref: ModelRef) -> list[dict[str, Any]]:
    """Catalogue entries of a model's realised precision and recall (every model spec has them; no YAML): the
    spec's floors (`monitoring.performance.min_*`) are the alert lines. A regression's are its realised MAE and
    RMSE, in the target's unit, with the ceilings `max_mae` and `max_rmse` as the alert lines."""
    cut = ref.spec.monitoring.performance
    regression = ref.spec.is_regression
    alerts = (
        {"mae": cut.max_mae, "rmse": cut.max_rmse}
        if regression
        else {
            "precision": None if cut.min_precision is None else round(100 * cut.min_precision, 2),
            "recall": None if cut.min_recall is None else round(100 * cut.min_recall, 2),
        }
    )
    entries = []
    for figure in realised_figures(ref):
        kpi_id = realised_kpi_id(ref, figure)
        name = figure.upper() if regression else figure
        entries.append(
            {
                "id": kpi_id,
                "label": f"{ref.spec.name}: realised {name}",
                "description": f"Weekly {name} of the champion's batch predictions against the outcomes that "
                f"arrived since (rows passing the spec's row_filter), beside its {name} on the validation rows "
                "(dimension `figure`). Published by the model's monitoring step.",
                "owner": ref.spec.owner,
                "unit": ref.spec.target if regression else "%",
                "direction": "lower" if regression else "higher",
                "target": None,
                "alert": alerts[figure],
                "grains": ["week"],
                "dimensions": ["figure"],
                "status": "draft",
                "tags": ["ml", "monitoring"],
                "usecase": ref.usecase,
                "yaml": _relative(ref.path, workspace.root),
                "kind": "monitoring",
                "dbt_model": f"kpi_{kpi_id}",
                "dbt_unique_id": None,
                "relation": None,
                "gold_uri": gold_uri(workspace, ref.usecase, f"kpi_{kpi_id}"),
                "sql": f"-- mlops.monitoring.{'realised_error_sql' if regression else 'realised_sql'} over "
                f"ml/{ref.usecase}/{ref.spec.name}/predictions",
                "upstream_models": [ref.spec.feature_table],
                "lineage": [
                    {
                        "source": f"ml/{ref.usecase}/{ref.spec.name}/monitoring",
                        "yaml": _relative(ref.path, workspace.root),
                        "owner": ref.spec.owner,
                        "bronze_table": None,
                    }
                ],
                "columns": ["grain", "period", "figure", "value"],
            }
        )
    return entries
