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

from pathlib import Path
from typing import Any

import duckdb
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
    """Catalogue entries of the model KPIs (same keys as the dbt KPIs': definition, SQL, lineage)."""
    scan = load_kpis(workspace.root)
    models = {(m.usecase, m.spec.name): m for m in load_model_specs(workspace.root).models}
    entries = []
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
