"""A profile naming a server that cannot be reached (a closed loopback port): `foundation ingest`, `run` and `serve`
stop at once with one error naming the setting and the fix: no stack trace, no credential, exit 1 (README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pg_server import free_port
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.workspace import Workspace
from foundation.platform.doctor import host_port, setting_name, unreachable_settings

SECRET = "lake-secret-0123456789"
DB_PASSWORD = "db-password-9876543210"


def production(endpoint: str, tracking_uri: str = "sqlite:///state/mlflow.db", dagster: str = "sqlite") -> dict:
    return {
        "profiles": {
            "production": {
                "lakehouse": {
                    "root": "s3://lake/foundation",
                    "storage_options": {
                        "AWS_ACCESS_KEY_ID": "lake-key",
                        "AWS_SECRET_ACCESS_KEY": "${LAKE_SECRET}",
                        "AWS_ENDPOINT_URL": endpoint,
                        "AWS_REGION": "us-east-1",
                        "AWS_ALLOW_HTTP": "true",
                    },
                },
                "dagster": {"storage": dagster},
                "mlflow": {"tracking_uri": tracking_uri},
            }
        }
    }


@pytest.fixture
def closed_port() -> int:
    return free_port()  # nothing listens on it: a connection is refused at once


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE_SECRET", SECRET)
    monkeypatch.setenv("FOUNDATION_PROFILE", "production")
    for name in ("AWS_ENDPOINT_URL", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT"):
        monkeypatch.delenv(name, raising=False)


def cli(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--workspace", str(root), "--profile", "production", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("command", [["ingest"], ["run"], ["serve"]])
def test_unreachable_object_store_names_the_setting(make_workspace, environ, closed_port, command) -> None:
    kit = make_workspace(settings=production(f"http://127.0.0.1:{closed_port}"))
    code, out = cli(kit.root, *command)
    assert code == 1, out
    setting = "profiles.production.lakehouse.storage_options.AWS_ENDPOINT_URL"
    assert f"{setting}: 127.0.0.1:{closed_port} is not reachable" in out
    assert "start the object store there" in out and "foundation doctor --profile production" in out
    assert "Traceback" not in out and SECRET not in out
    assert len(out.strip().splitlines()) <= 3  # one message (the console wraps long lines at 160 columns)


def test_json_envelope_names_every_unreachable_server(make_workspace, environ, closed_port, monkeypatch) -> None:
    tracking = f"postgresql+psycopg2://mlflow:{DB_PASSWORD}@127.0.0.1:{closed_port}/mlflow"
    kit = make_workspace(settings=production(f"http://127.0.0.1:{closed_port}", tracking, dagster="postgres"))
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(closed_port))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", DB_PASSWORD)
    for command in ("ingest", "run"):
        code, out = cli(kit.root, command, "--json")
        assert code == 1, out
        envelope = json.loads(out)
        assert (envelope["ok"], envelope["command"], envelope["data"]) == (False, command, None)
        message = envelope["errors"][0]["message"]
        assert "profiles.production.lakehouse.storage_options.AWS_ENDPOINT_URL" in message
        assert "DAGSTER_PG_HOST, DAGSTER_PG_PORT (dagster.storage: postgres)" in message
        assert f"profiles.production.mlflow.tracking_uri: 127.0.0.1:{closed_port} is not reachable" in message
        assert DB_PASSWORD not in out and SECRET not in out


def test_reachable_servers_and_local_profile_pass(make_workspace, environ, monkeypatch) -> None:
    kit = make_workspace(settings={})
    assert unreachable_settings(Workspace.open(kit.root, "local")) == []  # nothing remote: no probe at all
    import socket

    with socket.socket() as listening:  # a server that accepts: the probe only connects, it sends nothing
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        kit.write_settings(production(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}"))
        assert unreachable_settings(Workspace.open(kit.root, "production")) == []


def test_host_port_and_setting_name_are_pure() -> None:
    assert host_port("http://127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert host_port("postgresql+psycopg2://u:p@db.internal/mlflow") == ("db.internal", 5432)
    assert host_port("https://s3.eu-west-1.amazonaws.com") == ("s3.eu-west-1.amazonaws.com", 443)
    assert host_port("minio:9000") == ("minio", 9000)
    assert host_port("sqlite:///state/mlflow.db") is None and host_port("file:///lake") is None
    data = {"mlflow": {"tracking_uri": "x"}, "profiles": {"production": {"lakehouse": {"root": "s3://b"}}}}
    assert setting_name(data, "production", "lakehouse", "root") == "profiles.production.lakehouse.root"
    assert setting_name(data, "production", "mlflow", "tracking_uri") == "mlflow.tracking_uri"
