"""A tidy MLflow, on the real sqlite store: every run of a training (parent, 'as is', each candidate) in the use
case's experiment, none in "Default"; every artifact and logged model under `mlflow.artifact_root`, nothing in
./mlruns; a registry version only for a winner that passes the gate, a rejected one staying a logged model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pytest

from mlops.pipeline import load_training_set, run_training
from mlops.registry import artifact_root, mlflow_client, read_history
from mlops.training import model_inputs
from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hygiene")
    cwd = root / "cwd"  # where MLflow's default ./mlruns would land
    cwd.mkdir()
    workspace = MlWorkspace(root / "ws")
    workspace.publish(synthetic_features())
    workspace.write_spec(spec_dict(baseline={"rule": "temp > 101"}))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        first = run_training(workspace.workspace, workspace.ref())
        # one stump cannot beat the champion re-scored on the same rows: the gate rejects it
        stump = [{"name": "stump", "estimator": "decision_tree", "params": {"max_depth": 1}}]
        workspace.write_spec(spec_dict(baseline={"rule": "temp > 101"}, candidates=stump))
        rejected = run_training(workspace.workspace, workspace.ref())
    return {"kit": workspace, "cwd": cwd, "first": first, "rejected": rejected}


def test_every_run_is_in_the_use_cases_experiment_and_none_in_default(kit: dict[str, Any]) -> None:
    client = mlflow_client(kit["kit"].workspace)
    experiment = client.get_experiment_by_name("fleet__risk")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    # two trainings: a parent, the 'as is' rule and 4 candidates, then a parent, 'as is' and the stump
    assert len(runs) == 6 + 3
    assert sorted(r.info.run_name for r in runs if "mlflow.parentRunId" not in r.data.tags) == ["train risk"] * 2
    default = client.get_experiment_by_name("Default")
    assert default is None or client.search_runs([default.experiment_id]) == []


def test_every_artifact_and_logged_model_is_under_the_artifact_root(kit: dict[str, Any]) -> None:
    workspace = kit["kit"].workspace
    client = mlflow_client(workspace)
    root = Path(artifact_root(workspace)).resolve()
    experiment = client.get_experiment_by_name("fleet__risk")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    for run in runs:
        assert Path(run.info.artifact_uri.removeprefix("file://")).resolve().is_relative_to(root), run.info
    models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert len(models) == 4 + 1
    for model in models:
        assert Path(model.artifact_location.removeprefix("file://")).resolve().is_relative_to(root)
    assert not (kit["cwd"] / "mlruns").exists()


def test_only_a_winner_that_passes_the_gate_becomes_a_registry_version(kit: dict[str, Any]) -> None:
    workspace = kit["kit"].workspace
    first, rejected = kit["first"], kit["rejected"]
    assert first["gate"]["passed"] and first["registered_version"] == 1
    assert not rejected["gate"]["passed"] and rejected["registered_version"] is None
    client = mlflow_client(workspace)
    assert [int(v.version) for v in client.search_model_versions("name = 'fleet__risk'")] == [1]
    # the rejected winner stays a logged model of its run: loadable, promotable by hand after registering it
    model = mlflow.sklearn.load_model(rejected["logged_model"])
    assert model.predict_proba(first_rows(kit["kit"])).shape[1] == 2
    (event,) = [e for e in read_history(workspace, "fleet__risk") if e["action"] == "reject"]
    assert event["version"] is None and event["previous_version"] == 1 and event["run_id"] == rejected["run_id"]


def first_rows(kit: MlWorkspace) -> Any:
    ref = kit.ref()
    frame = load_training_set(kit.workspace, ref).frame.head(3)
    return model_inputs(frame, ref.spec.feature_columns(list(frame.columns)))
