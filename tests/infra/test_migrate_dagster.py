"""`foundation migrate dagster`: a workspace's SQLite instance (two real runs, one of them failed, and an event
recorded outside runs) copied to the tests' PostgreSQL: the runs, their statuses, materialisations and the runless
event are there, the asset catalogue answers from PostgreSQL, and a second migration copies nothing twice."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import dagster as dg
import pytest
from pg_server import PostgresServer
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.workspace import Workspace
from foundation.dagster_defs.instance import POSTGRES_ENV, dagster_instance
from foundation.dagster_defs.migrate_runs import postgres_instance

TRUCKS = dg.AssetKey(["uc", "bronze", "trucks"])


@dg.asset(key=TRUCKS)
def trucks() -> int:
    return 3


@dg.asset(key=["uc", "gold", "broken"])
def broken() -> int:
    raise RuntimeError("a failing step")


def _history(workspace: Workspace) -> list[str]:
    """Two runs on the workspace's SQLite instance, and a promotion-like event outside runs; their run ids."""
    instance = dagster_instance(workspace)
    try:
        ok = dg.materialize([trucks], instance=instance)
        failed = dg.materialize([broken], instance=instance, raise_on_error=False)
        instance.report_runless_asset_event(dg.AssetObservation(asset_key=TRUCKS, metadata={"champion": 2}))
        return [ok.run_id, failed.run_id]
    finally:
        instance.dispose()


def _pg_env(monkeypatch: pytest.MonkeyPatch, pg: PostgresServer, database: str) -> None:
    values = {
        "hostname": pg.host,
        "port": str(pg.port),
        "db_name": database,
        "username": pg.user,
        "password": pg.password,
    }
    for field, value in values.items():
        monkeypatch.setenv(POSTGRES_ENV[field], value)


def _migrate(root: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["--workspace", str(root), "migrate", "dagster", "--json"])
    return result.exit_code, json.loads(result.output)


@pytest.mark.slow
def test_migrate_copies_runs_events_and_runless_events_once(
    make_workspace, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kit = make_workspace(sources=[])
    run_ids = _history(Workspace.open(kit.root))
    database = f"dagster_{secrets.token_hex(4)}"
    postgres_server.create_database(database)
    _pg_env(monkeypatch, postgres_server, database)

    code, first = _migrate(kit.root)
    assert code == 0, first
    assert first["data"]["runs"] == 2 and first["data"]["already"] == 0 and first["data"]["events"] > 0
    code, second = _migrate(kit.root)
    assert code == 0 and second["data"] == {"runs": 0, "already": 2, "events": 0}

    folder = tmp_path / "pg-home"
    folder.mkdir()
    target = postgres_instance(folder)
    try:
        statuses = {run.run_id: run.status for run in target.get_runs()}
        assert statuses == {run_ids[0]: dg.DagsterRunStatus.SUCCESS, run_ids[1]: dg.DagsterRunStatus.FAILURE}
        materialisation = target.get_latest_materialization_event(TRUCKS)
        assert materialisation is not None and materialisation.run_id == run_ids[0]
        observations = target.fetch_observations(TRUCKS, limit=10).records
        assert [o.asset_observation.metadata["champion"].value for o in observations] == [2]
        for run_id in run_ids:  # each event once, after two migrations
            assert len(target.all_logs(run_id)) == len(dagster_instance(Workspace.open(kit.root)).all_logs(run_id))
    finally:
        target.dispose()


def test_an_unreachable_database_is_named_without_its_password(make_workspace, monkeypatch) -> None:
    kit = make_workspace(sources=[])
    _history(Workspace.open(kit.root))
    for field, value in {"hostname": "127.0.0.1", "port": "9", "db_name": "x", "username": "u"}.items():
        monkeypatch.setenv(POSTGRES_ENV[field], value)
    monkeypatch.setenv(POSTGRES_ENV["password"], "s3cret-never-printed")
    code, out = _migrate(kit.root)
    assert code == 1 and not out["ok"]
    message = out["errors"][0]["message"]
    assert "DAGSTER_PG_HOST" in message and "cannot connect" in message and "s3cret" not in json.dumps(out)
