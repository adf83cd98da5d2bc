"""A red monitoring check is said, not hidden: a feature that leaves its training range fails `feature_drift`
against its own cut-off; `foundation quality --json` lists it and exits 1; the demo's closing lines name it instead
of a bare "done". Real Dagster run (the predictions and monitoring assets) on the workspace's instance."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from foundation.cli.demo_command import print_red_checks, red_checks
from foundation.cli.main import app
from foundation.dagster_defs.ml_assets import ml_definitions, ml_key
from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> MlWorkspace:
    from foundation.dagster_defs.instance import dagster_instance
    from foundation.dagster_defs.resources import FoundationResource
    from mlops.pipeline import run_training

    workspace = MlWorkspace(tmp_path_factory.mktemp("red") / "ws")
    frame = synthetic_features(trucks=8, days=50)
    latest = frame["date_day"] > sorted(frame["date_day"].unique())[-15]
    frame.loc[latest, "hours"] += 40.0  # the latest 14 days leave every in-training window far behind
    workspace.publish(frame)
    workspace.write_spec(spec_dict(baseline={"rule": "temp > 101"}))
    run_training(workspace.workspace, workspace.ref())
    assets, _, _ = ml_definitions(workspace.workspace)
    ref = workspace.ref()
    run = dg.materialize(
        assets,
        selection=dg.AssetSelection.assets(ml_key(ref, "predictions"), ml_key(ref, "monitoring")),
        instance=dagster_instance(workspace.workspace),
        resources={"foundation": FoundationResource(workspace_dir=str(Path(workspace.root)))},
    )
    assert run.success
    return workspace


def test_quality_lists_the_red_drift_check_and_exits_1(kit: MlWorkspace) -> None:
    result = CliRunner().invoke(app, ["--workspace", str(kit.root), "quality", "--json"])
    assert result.exit_code == 1, result.output
    rows = {r["check"]: r for r in json.loads(result.stdout)["data"] if r["stage"] == "ml monitoring"}
    drift = rows["feature_drift"]
    assert drift["status"] == "fail" and drift["source"] == "fleet/ml/risk/monitoring"
    assert "hours (PSI " in drift["observed"]  # named, with its PSI against its own cut-off


def test_the_demo_names_red_checks_instead_of_a_bare_done(kit: MlWorkspace, capsys: pytest.CaptureFixture) -> None:
    red = red_checks(kit.workspace)
    assert "feature_drift" in [r["check"] for r in red]
    json.dumps(red)  # the demo's --json carries them
    print_red_checks(red)
    out = capsys.readouterr().out
    assert "ML monitoring check(s) are red" in out and "feature_drift" in out and "hours (PSI" in out
