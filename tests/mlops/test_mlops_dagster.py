"""End to end through Dagster and the CLI: `foundation train` runs the training assets and prints the comparison;
the predictions and monitoring assets run with their asset checks; `foundation models` lists and shows."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.dagster_defs.ml_assets import ml_definitions, ml_key
from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features
from tests.mlops.test_mlops_at_risk import KPI_YAML, independent_counts, write_kpi

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> MlWorkspace:
    workspace = MlWorkspace(tmp_path_factory.mktemp("mldagster") / "ws")
    workspace.publish(synthetic_features(trucks=8, days=50))
    weak_rule = {"rule": "temp > 101"}  # a weak "as is", so the first training surely makes a champion
    workspace.write_spec(spec_dict(baseline=weak_rule, schedules={"training": "0 3 * * 1", "inference": "0 6 * * *"}))
    write_kpi(workspace, KPI_YAML.format(model="risk"))
    return workspace


def test_ml_definitions(kit: MlWorkspace) -> None:
    assets, schedules, sensors = ml_definitions(kit.workspace)
    keys = {key for asset in assets for key in asset.keys}
    assert ml_key(kit.ref(), "registered") in keys and ml_key(kit.ref(), "monitoring") in keys
    # training follows its cron through an automation condition (foundation/dagster_defs/automation.py)
    assert {s.name for s in schedules} == {"fleet__risk__inference"}
    conditions = {spec.key: spec.automation_condition for asset in assets for spec in asset.specs}
    assert conditions[ml_key(kit.ref(), "training_set")].get_label() == "on_cron(0 3 * * 1, UTC)"
    assert [s.name for s in sensors] == ["ml_retrain_on_failed_monitoring"]
    from foundation.dagster_defs.resources import FoundationResource

    resources = {"foundation": FoundationResource(workspace_dir=str(kit.root))}
    defs = dg.Definitions(assets=assets, schedules=schedules, sensors=sensors, resources=resources)
    defs.get_repository_def().get_all_jobs()


def test_train_then_score_and_monitor_through_dagster(kit: MlWorkspace) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--workspace", str(kit.root), "train", "fleet", "--json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["data"]["reports"]
    assert report["champion"] == report["registered_version"] == 1
    # no third-party chatter on the console: MLflow's registration notices go to .foundation/logs/train.log
    assert "Registered model" not in result.stderr and "Successfully registered" not in result.stderr, result.stderr
    assert "Registered model 'fleet__risk' already exists" in (kit.root / ".foundation/logs/train.log").read_text()
    table = runner.invoke(app, ["--workspace", str(kit.root), "train", "fleet"])
    assert table.exit_code == 0 and "True Negatives" in table.stdout and "As is" in table.stdout
    assert "not promoted" in table.stdout  # the same data and seed: a tie keeps the champion
    assert "Trucks at risk" not in table.stdout  # no batch predictions yet: nothing to count

    from foundation.dagster_defs.instance import dagster_instance
    from foundation.dagster_defs.resources import FoundationResource

    assets, _, _ = ml_definitions(kit.workspace)
    ref = kit.ref()
    run = dg.materialize(
        assets,
        selection=dg.AssetSelection.assets(ml_key(ref, "predictions"), ml_key(ref, "monitoring")),
        instance=dagster_instance(kit.workspace),
        resources={"foundation": FoundationResource(workspace_dir=str(Path(kit.root)))},
    )
    assert run.success
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert set(checks) == {"feature_drift", "realised_performance"}
    # `foundation quality` shows them too, read from the same instance (it listed data-quality rules only)
    from foundation.platform.quality_report import ml_monitoring_rows

    rows = {r["check"]: r for r in ml_monitoring_rows(kit.workspace)}
    assert set(rows) == set(checks)
    for name, passed in checks.items():
        assert rows[name]["status"] == ("pass" if passed else "fail") and rows[name]["stage"] == "ml monitoring"
    assert rows["feature_drift"]["source"] == "fleet/ml/risk/monitoring"
    assert "max_psi=" in rows["feature_drift"]["observed"]
    assert ml_monitoring_rows(kit.workspace, {"another_usecase"}) == []

    # `foundation train` prints the at-risk KPI of the champion's predictions under the comparison.
    from deltalake import DeltaTable

    from mlops.inference import predictions_uri

    day, count = max(independent_counts(DeltaTable(predictions_uri(kit.workspace, ref)).to_pandas(), "day").items())
    again = runner.invoke(app, ["--workspace", str(kit.root), "train", "fleet"])
    assert f"Trucks at risk: {count:,.0f} trucks on {day} (KPI trucks_at_risk" in again.stdout, again.stdout
    as_json = runner.invoke(app, ["--workspace", str(kit.root), "train", "fleet", "--json"])
    (report,) = json.loads(as_json.stdout)["data"]["reports"]
    assert report["model_kpis"] == [
        {"id": "trucks_at_risk", "label": "Trucks at risk", "unit": "trucks", "period": day, "value": count}
    ]

    listing = runner.invoke(app, ["--workspace", str(kit.root), "models", "list", "--json"])
    assert json.loads(listing.stdout)["data"][0]["champion"] == 1
    shown = runner.invoke(app, ["--workspace", str(kit.root), "models", "show", "fleet__risk"])
    assert "Promotion history" in shown.stdout and "reject" in shown.stdout
    missing = runner.invoke(app, ["--workspace", str(kit.root), "models", "rollback", "fleet__risk"])
    assert missing.exit_code == 2 and "no previous champion" in missing.output


def test_train_returns_this_runs_report_whatever_the_report_files_time(kit: MlWorkspace) -> None:
    """The report comes back from the run itself (the `registered` asset's value), not from comparing the
    modification time of training_report.json: a file stamped in the future does not hide the new training."""
    import os

    from mlops.pipeline import report_path

    path = report_path(kit.workspace, kit.ref())
    before = json.loads(path.read_text())
    future = path.stat().st_mtime + 86_400
    os.utime(path, (future, future))
    result = CliRunner().invoke(app, ["--workspace", str(kit.root), "train", "fleet", "--json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["data"]["reports"]
    assert report["run_id"] != before["run_id"]  # this training's MLflow run, not the file's
    assert json.loads(path.read_text())["run_id"] == report["run_id"]


def test_foundation_run_prints_the_comparison_winner_and_verdict_of_its_own_training(tmp_path: Path) -> None:
    """`foundation run` shows what `foundation train` shows, from the run's own training: nothing trained twice."""
    from mlops.registry import mlflow_client

    fresh = MlWorkspace(tmp_path / "ws")
    fresh.publish(synthetic_features(trucks=8, days=50))
    fresh.write_spec(spec_dict(baseline={"rule": "temp > 101"}))
    result = CliRunner().invoke(app, ["--workspace", str(fresh.root), "run"])
    assert result.exit_code == 0, result.output
    assert "True Negatives" in result.stdout and "As is" in result.stdout and "gradient_boosting" in result.stdout
    assert "-> fleet__risk v1 champion: beats 'as is'" in result.stdout, result.stdout
    client = mlflow_client(fresh.workspace)
    experiment = client.get_experiment_by_name("fleet__risk").experiment_id
    assert len(client.search_runs([experiment], filter_string="tags.`foundation.model` = 'risk'")) == 1
    assert [int(v.version) for v in client.search_model_versions("name = 'fleet__risk'")] == [1]


def test_too_little_data_skips_training_without_failing_the_run(tmp_path: Path) -> None:
    small = MlWorkspace(tmp_path / "ws")
    small.publish(synthetic_features(trucks=3, days=12))  # 5 labelled days: no room for a 7-day gap
    small.write_spec(spec_dict())
    result = CliRunner().invoke(app, ["--workspace", str(small.root), "train", "fleet", "--json"])
    assert result.exit_code == 1, result.output  # asked to train, nothing trained: say so
    out = json.loads(result.stdout)["data"]
    assert out["reports"] == [] and "no training rows left" in out["skipped"]["fleet/risk"]

    from foundation.dagster_defs.instance import dagster_instance
    from foundation.dagster_defs.resources import FoundationResource

    assets, _, _ = ml_definitions(small.workspace)
    run = dg.materialize(
        assets,
        instance=dagster_instance(small.workspace),
        resources={"foundation": FoundationResource(workspace_dir=str(small.root))},
    )
    assert run.success  # a whole-pipeline run (foundation run, the demo) is not failed by a model short of data
    assert not run.get_asset_materialization_events()
