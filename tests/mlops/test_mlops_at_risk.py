"""Trucks at risk: a KPI on a model's predictions, published by the predictions step, read by the catalogue."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from deltalake import DeltaTable
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.workspace import load_kpis, load_model_specs
from foundation.engine.dbt.publish import write_catalog
from kpi_catalog.catalogue import KpiCatalog
from mlops.feature_table_checks import check_model_kpis
from mlops.inference import batch_score, predictions_uri
from mlops.kpis import catalog_entries, publish_model_kpis
from tests.mlops.conftest import USECASE, MlWorkspace, spec_dict

KPI_YAML = """id: trucks_at_risk
label: Trucks at risk
description: Trucks the champion flags.
owner: ds@example.com
unit: trucks
direction: lower
grains: [day, week]
predictions: {model}
"""


def write_kpi(kit: MlWorkspace, text: str, name: str = "trucks_at_risk") -> None:
    folder = kit.root / "usecases" / USECASE / "kpis"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


def independent_counts(predictions: pd.DataFrame, grain: str) -> dict[str, float]:
    """Distinct trucks with label = true per period, 0 for periods with predictions but no flag (pandas only)."""
    days = pd.to_datetime(predictions["date_day"])
    period = days.dt.to_period("W-SUN").dt.start_time if grain == "week" else days
    frame = predictions.assign(period=period.dt.date.astype(str))
    flagged = frame[frame["label"]].groupby("period")["truck_id"].nunique()
    return {p: float(flagged.get(p, 0)) for p in sorted(frame["period"].unique())}


def test_trucks_at_risk_equals_an_independent_count(trained: dict[str, Any]) -> None:
    kit: MlWorkspace = trained["kit"]
    write_kpi(kit, KPI_YAML.format(model="risk"))
    workspace, ref = kit.workspace, kit.ref()
    assert publish_model_kpis(workspace, ref) == {}  # nothing before the first batch
    batch_score(workspace, ref)
    published = publish_model_kpis(workspace, ref)
    write_catalog(workspace, {}, catalog_entries(workspace))  # no dbt KPI here: the model KPI and realised performance
    predictions = DeltaTable(predictions_uri(workspace, ref)).to_pandas()
    assert predictions["label"].any() and not predictions["label"].all()  # a count that can be wrong
    catalog = KpiCatalog(workspace.lakehouse_root)
    assert catalog.ids() == ["risk_realised_precision", "risk_realised_recall", "trucks_at_risk"]
    for grain in ("day", "week"):
        got = {p.period.isoformat(): p.value for p in catalog.history("trucks_at_risk", grain)[None]}
        assert got == independent_counts(predictions, grain), grain
    assert published == {
        "trucks_at_risk": len(independent_counts(predictions, "day")) + len(independent_counts(predictions, "week"))
    }

    runner = CliRunner()
    shown = runner.invoke(app, ["--workspace", str(kit.root), "kpi", "show", "trucks_at_risk", "--json"])
    assert shown.exit_code == 0, shown.output
    item = json.loads(shown.output)["data"]
    last_day = max(independent_counts(predictions, "day").items())
    assert (item["latest"]["period"], item["latest"]["value"]) == last_day
    assert item["kind"] == "predictions" and item["lineage"][0]["source"] == f"ml/{USECASE}/risk/predictions"
    listed = runner.invoke(app, ["--workspace", str(kit.root), "kpi", "list", "at risk", "--json"])
    assert listed.exit_code == 0 and "trucks_at_risk" in listed.output


def test_a_model_kpi_must_name_a_model_spec_and_nothing_else(ml_workspace: MlWorkspace) -> None:
    ml_workspace.write_spec(spec_dict())
    write_kpi(ml_workspace, KPI_YAML.format(model="risky"))
    scan = load_kpis(ml_workspace.root)
    errors = check_model_kpis(scan.kpis, load_model_specs(ml_workspace.root).models)
    assert [(e.field, e.line) for e in errors] == [("predictions", 8)]
    assert "no model spec 'risky'" in errors[0].message and "risk" in errors[0].hint

    write_kpi(ml_workspace, KPI_YAML.format(model="risk") + "expression: count(*)\n")
    scan = load_kpis(ml_workspace.root)
    assert not scan.ok and "remove expression" in scan.errors[0].message
