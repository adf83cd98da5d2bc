"""A tiny workspace with two trained, registered champions (MLflow sqlite store), built once per session.

`fleet__risk` (logistic regression) and `fleet__other` (decision tree) are trained on the MLOps tests' synthetic
truck-days by the real pipeline (`mlops.pipeline.run_training`), so the API serves what training registers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlops.registry import current_champion, mlflow_client
from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features

RISK = "fleet__risk"
OTHER = "fleet__other"
ALL_KEY = "all-models-key-0123456789"
RISK_KEY = "risk-only-key-0123456789"
KEYS = f"{ALL_KEY},{RISK_KEY}:{RISK}"


def _train(kit: MlWorkspace, name: str, candidate: dict[str, Any]) -> None:
    from mlops.pipeline import run_training

    # an 'as is' that never alerts: the gate registers the one candidate (only a winner that passes is registered)
    kit.write_spec(spec_dict(name=name, candidates=[candidate], baseline={"rule": "temp > 200"}), name=name)
    report = run_training(kit.workspace, kit.ref(name))
    assert report["gate"]["passed"], report["gate"]
    assert current_champion(mlflow_client(kit.workspace), f"fleet__{name}") is not None


@pytest.fixture(scope="session")
def served_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kit = MlWorkspace(tmp_path_factory.mktemp("serving") / "ws")
    kit.publish(synthetic_features(trucks=6, days=40))
    _train(kit, "risk", {"name": "logistic_regression", "estimator": "logistic_regression", "params": {}})
    _train(kit, "other", {"name": "decision_tree", "estimator": "decision_tree", "params": {"max_depth": 3}})
    return kit.root


@pytest.fixture(scope="session")
def instances() -> list[dict[str, Any]]:
    """Three valid rows of the models' input (every feature of the synthetic table)."""
    return [
        {"truck_type": "van", "temp": 99.5, "vibration": 3.6, "hours": 4.0},
        {"truck_type": "rigid", "temp": 85.0, "vibration": 2.7, "hours": 0.0},
        {"truck_type": "tractor", "temp": 93.2, "vibration": 3.1, "hours": 11.0},
    ]


@pytest.fixture
def client(served_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app on the trained workspace, keys configured, started (a context manager: the lifespan runs)."""
    from serving.app import create_app

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    with TestClient(create_app(served_workspace), raise_server_exceptions=False) as test_client:
        yield test_client


def auth(key: str = ALL_KEY) -> dict[str, str]:
    return {"X-API-Key": key}


@pytest.fixture
def own_workspace(served_workspace: Path, tmp_path: Path) -> Path:
    """A copy of the trained workspace that a test may change (promote, break the registry) alone."""
    import shutil

    copy = tmp_path / "ws"
    shutil.copytree(served_workspace, copy, ignore=shutil.ignore_patterns("api_predictions"))
    return copy


def add_version(root: Path, name: str, source: str | None = None) -> int:
    """Register one more version of `name` (the same model as its champion, or `source`): a version to move to."""
    from foundation.core.workspace import Workspace

    client = mlflow_client(Workspace.open(root))
    champion = current_champion(client, name)
    created = client.create_model_version(name, source=source or champion.source, run_id=champion.run_id)
    for key, value in (champion.tags or {}).items():
        client.set_model_version_tag(name, created.version, key, value)
    return int(created.version)
