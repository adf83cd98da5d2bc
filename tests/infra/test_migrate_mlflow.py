"""`foundation migrate mlflow`: a trained workspace's SQLite store moved to the tests' PostgreSQL, its artifacts to a
real S3-compatible server (moto), then served by the shipped tracking server: the champion, its versions, tags and
metrics are the same, the champion loads from S3 through the server and scores as before, and the promotion history
(in the lakehouse) still agrees with the registry. A second run refuses the now non-empty database."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from pg_server import PostgresServer
from s3_server import S3Server, running_s3
from typer.testing import CliRunner

from foundation.cli.main import app
from mlops.registry import CHAMPION, read_history
from mlops.store_migration import PROXIED, location_rewriter
from tests.infra.conftest import running_mlflow_server_on_s3
from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features

BUCKET = "mlflow-move"
DESTINATION = f"s3://{BUCKET}/mlflow-artifacts"


def test_locations_in_the_folder_become_proxied_and_nothing_else_changes() -> None:
    rewrite = location_rewriter("/ws/.foundation/mlartifacts")
    assert rewrite("/ws/.foundation/mlartifacts/fleet/abc/artifacts") == f"{PROXIED}/fleet/abc/artifacts"
    assert rewrite("file:///ws/.foundation/mlartifacts/fleet") == f"{PROXIED}/fleet"
    assert rewrite("/ws/.foundation/mlartifacts-other/x") == "/ws/.foundation/mlartifacts-other/x"
    assert rewrite("models:/m-123") == "models:/m-123" and rewrite(3) == 3


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3() as server:
        server.create_bucket(BUCKET)
        yield server


def _state(client: Any, name: str) -> dict[str, Any]:
    champion = client.get_model_version_by_alias(name, CHAMPION)
    run = client.get_run(champion.run_id)
    return {
        "champion": int(champion.version),  # the REST client answers strings, the SQLite store ints
        "versions": sorted((int(v.version), v.run_id) for v in client.search_model_versions(f"name = '{name}'")),
        "tags": champion.tags,
        "metrics": run.data.metrics,
        "experiment": client.get_experiment(run.info.experiment_id).name,
    }


@pytest.mark.slow
def test_migrate_keeps_the_champion_and_its_history(
    tmp_path: Path, s3: S3Server, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.pipeline import run_training
    from mlops.registry import mlflow_client

    kit = MlWorkspace(tmp_path / "ws")
    kit.publish(synthetic_features())
    kit.write_spec(spec_dict())
    ref = kit.ref()
    run_training(kit.workspace, ref)
    name = ref.registered_name
    before = _state(mlflow_client(kit.workspace), name)
    rows = synthetic_features().head(20)
    features = json.loads(before["tags"]["foundation.features"])
    expected = mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION}").predict_proba(rows[features])

    database = f"mlflow_{secrets.token_hex(4)}"
    postgres_server.create_database(database)
    target = postgres_server.url_for(database).replace("postgresql://", "postgresql+psycopg2://", 1)
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", target)
    monkeypatch.setenv("MLFLOW_ARTIFACTS_DESTINATION", DESTINATION)
    for key, value in s3.environ().items():
        monkeypatch.setenv(key, value)
    migrated = CliRunner().invoke(app, ["--workspace", str(kit.root), "migrate", "mlflow", "--json"])
    assert migrated.exit_code == 0, migrated.output
    report = json.loads(migrated.output)["data"]
    assert report["rows"]["model_versions"] == len(before["versions"]) and report["artifact_files"] > 0
    assert postgres_server.password not in migrated.output

    again = CliRunner().invoke(app, ["--workspace", str(kit.root), "migrate", "mlflow", "--json"])
    assert again.exit_code == 1 and "not empty" in again.output
    assert postgres_server.password not in again.output

    with running_mlflow_server_on_s3(postgres_server, database, s3.environ(), DESTINATION, tmp_path / "srv") as url:
        client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
        assert _state(client, name) == before
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        for key in s3.environ():  # the model comes from S3 through the server: the client needs no S3 credentials
            monkeypatch.delenv(key)
        served = mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION}")
        assert (served.predict_proba(rows[features]) == expected).all()
        created = client.create_experiment("after_the_move")  # ids continue after the copied ones
        assert int(created) > max(
            int(e.experiment_id) for e in client.search_experiments() if e.name != "after_the_move"
        )
    history = read_history(kit.workspace, name)
    assert [e["version"] for e in history if e["action"] == "promote"] == [int(before["champion"])]
