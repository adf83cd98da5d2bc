"""A model KPI reused with `extends:` (foundation.specs.kpi.resolve_kpis): the child inherits `predictions:` and the
rest of the definition, overrides what differs, is published by the predictions step and read by the catalogue;
mixing it with a dbt definition fails with the line and the fix."""

from __future__ import annotations

from typing import Any

from foundation.core.workspace import load_kpis, load_model_specs
from foundation.engine.dbt.publish import write_catalog
from kpi_catalog.catalogue import KpiCatalog
from mlops.feature_table_checks import check_model_kpis
from mlops.inference import batch_score
from mlops.kpis import catalog_entries, latest_model_kpis, publish_model_kpis
from tests.mlops.conftest import MlWorkspace, spec_dict
from tests.mlops.test_mlops_at_risk import KPI_YAML, write_kpi

CHILD_YAML = """id: trucks_at_risk_certified
extends: trucks_at_risk
label: Trucks at risk (certified)
description: The same count, certified by fleet ops with a target.
owner: fleet-ops@example.com
target: 1
status: certified
"""


def test_a_kpi_extending_a_model_kpi_inherits_its_predictions(trained: dict[str, Any]) -> None:
    kit: MlWorkspace = trained["kit"]
    write_kpi(kit, KPI_YAML.format(model="risk"))
    write_kpi(kit, CHILD_YAML, name="trucks_at_risk_certified")
    workspace, ref = kit.workspace, kit.ref()

    scan = load_kpis(kit.root)
    assert scan.ok, [e.format() for e in scan.errors]
    child = next(k.spec for k in scan.kpis if k.spec.id == "trucks_at_risk_certified")
    assert (child.predictions, child.unit, child.direction, child.grains) == (
        "risk",
        "trucks",
        "lower",
        ["day", "week"],
    )
    assert (child.owner, child.target, child.status) == ("fleet-ops@example.com", 1.0, "certified")
    assert check_model_kpis(scan.kpis, load_model_specs(kit.root).models) == []

    batch_score(workspace, ref)
    published = publish_model_kpis(workspace, ref)
    assert set(published) == {"trucks_at_risk", "trucks_at_risk_certified"}
    write_catalog(workspace, {}, catalog_entries(workspace))
    catalog = KpiCatalog(workspace.lakehouse_root)
    for grain in ("day", "week"):
        base = catalog.history("trucks_at_risk", grain)[None]
        reused = catalog.history("trucks_at_risk_certified", grain)[None]
        assert [(p.period, p.value) for p in reused] == [(p.period, p.value) for p in base] and base
    summary = catalog.summary("trucks_at_risk_certified", "day")
    assert summary["target"] == 1.0 and summary["kind"] == "predictions"
    assert [k["id"] for k in latest_model_kpis(workspace, ref)] == ["trucks_at_risk", "trucks_at_risk_certified"]


def test_extending_a_model_kpi_with_a_dbt_definition_is_refused(ml_workspace: MlWorkspace) -> None:
    ml_workspace.write_spec(spec_dict())
    write_kpi(ml_workspace, KPI_YAML.format(model="risk"))
    write_kpi(ml_workspace, CHILD_YAML + "model: fct_truck_day\n", name="trucks_at_risk_certified")
    scan = load_kpis(ml_workspace.root)
    assert not scan.ok
    (error,) = scan.errors
    assert error.path.name == "trucks_at_risk_certified.yaml"
    assert "a model KPI (`predictions:`)" in error.message and "remove model" in error.message
