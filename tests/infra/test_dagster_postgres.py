"""Dagster on PostgreSQL: `dagster: {storage: postgres}` + the DAGSTER_PG_* environment is the whole change, and
`foundation run` then records its runs, materialisations and check results in PostgreSQL.

The slow test materialises the machine_failure use case (ingestion of the AI4I CSV, quality checks, dbt build, gold
publish) through our definitions, exactly as `foundation run machine_failure` does, against a real PostgreSQL
(tests/pg_server.py). The fast tests pin the instance configuration and its errors.
"""

from __future__ import annotations

import importlib.util
import secrets
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from pg_server import PostgresServer

from foundation.core.workspace import Workspace
from foundation.dagster_defs.instance import (
    POSTGRES_ENV,
    DagsterInstanceError,
    dagster_home,
    instance_config,
    prepare_home,
)
from foundation.engine.lakehouse.catalog import register_bronze

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra" / "dagster"
USECASE = "machine_failure"


def _demo_workspace(root: Path) -> Path:
    """The repository's use cases and dbt project, without model specs (training is not what this test is about,
    and would double its time). Only machine_failure is run: its source is a CSV shipped in the repository."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "foundation.yaml", root / "foundation.yaml")
    shutil.copytree(REPO / "usecases", root / "usecases", ignore=shutil.ignore_patterns("ml"))
    ignore = shutil.ignore_patterns("_generated", "target", "logs")
    shutil.copytree(REPO / "dbt_project", root / "dbt_project", ignore=ignore)
    return root


def _postgres_env(monkeypatch: pytest.MonkeyPatch, pg: PostgresServer, database: str) -> None:
    values = {"hostname": pg.host, "port": str(pg.port), "db_name": database, "username": pg.user}
    for field, value in {**values, "password": pg.password}.items():
        monkeypatch.setenv(POSTGRES_ENV[field], value)


@pytest.mark.slow
def test_foundation_run_records_runs_and_materialisations_in_postgres(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from foundation.dagster_defs.pipeline_run import run_pipeline

    root = _demo_workspace(tmp_path / "ws")
    database = f"dagster_{secrets.token_hex(4)}"
    postgres_server.create_database(database)
    _postgres_env(monkeypatch, postgres_server, database)
    monkeypatch.setenv("FOUNDATION_DAGSTER__STORAGE", "postgres")  # the settings change; the rest is environment

    summary = run_pipeline(Workspace.open(root), USECASE)
    assert summary.ok, summary.step_errors
    assert summary.dbt_counts.get("error", 0) == 0 and summary.dbt_counts["success"] >= 3

    def sql(query: str) -> list[str]:
        return [line for line in postgres_server.psql(query, database=database).splitlines() if line]

    assert sql("SELECT status FROM runs") == ["SUCCESS"]
    assert sql("SELECT value FROM run_tags WHERE key = 'foundation/command'") == ["run"]
    materialised = set(
        sql("SELECT DISTINCT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
    )
    for key in (
        '["machine_failure","bronze","ai4i_readings"]',
        '["machine_failure","marts","fct_product_runs"]',
        '["machine_failure","kpis","kpi_failure_rate_by_machine_type"]',
        '["machine_failure","gold","published"]',
    ):
        assert key in {k.replace(" ", "") for k in materialised}, f"{key} not recorded; got {sorted(materialised)}"
    # Declared quality rules and dbt tests are asset checks: their results are in PostgreSQL too.
    assert int(sql("SELECT count(*) FROM asset_check_executions WHERE execution_status = 'SUCCEEDED'")[0]) >= 5
    # The DuckDB one-writer rule holds across runs: the warehouse pool got the instance's limit of 1.
    assert sql("SELECT concurrency_key || '=' || \"limit\" FROM concurrency_limits") == ["duckdb_warehouse=1"]

    # Nothing went to the embedded SQLite storage, and no secret was written to the instance's dagster.yaml.
    home = dagster_home(Workspace.open(root))
    assert not list(home.rglob("*.db")), sorted(str(p) for p in home.rglob("*.db"))
    assert postgres_server.password not in (home / "dagster.yaml").read_text()
    # The bronze table landed in the lakehouse (Delta), readable through DuckDB.
    con = duckdb.connect()
    try:
        register_bronze(con, Workspace.open(root).lakehouse_root)
        count = con.execute('SELECT count(*) FROM bronze."machine_failure__ai4i_readings"').fetchall()[0][0]
    finally:
        con.close()
    assert count == 10_000


def test_generated_postgres_instance_is_the_shipped_infra_file() -> None:
    shipped = yaml.safe_load((INFRA / "dagster.yaml").read_text(encoding="utf-8"))
    assert shipped == instance_config("postgres")
    assert shipped["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert shipped["concurrency"]["pools"]["default_limit"] == 1


def test_infra_workspace_yaml_loads_our_definitions_module() -> None:
    workspace = yaml.safe_load((INFRA / "workspace.yaml").read_text(encoding="utf-8"))
    (location,) = workspace["load_from"]
    module = location["python_module"]["module_name"]
    assert importlib.util.find_spec(module) is not None, f"{module} is not importable"


def _workspace(tmp_path: Path, settings: str = "") -> Workspace:
    root = tmp_path / "ws"
    root.mkdir(exist_ok=True)
    (root / "foundation.yaml").write_text(settings, encoding="utf-8")
    return Workspace.open(root)


def test_missing_postgres_environment_is_named_without_leaking_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in POSTGRES_ENV.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "s3cret-value-never-shown")
    monkeypatch.setenv("DAGSTER_PG_USER", "dagster")
    with pytest.raises(DagsterInstanceError) as error:
        prepare_home(_workspace(tmp_path, "dagster: {storage: postgres}\n"))
    message = str(error.value)
    assert "DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_DB not set" in message
    assert "s3cret" not in message and "DAGSTER_PG_USER" not in message


def test_switching_storage_rewrites_only_a_generated_dagster_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in POSTGRES_ENV.values():
        monkeypatch.setenv(variable, "5432" if variable.endswith("PORT") else "x")
    home = prepare_home(_workspace(tmp_path))
    assert "storage" not in yaml.safe_load((home / "dagster.yaml").read_text())  # SQLite: Dagster's default
    prepare_home(_workspace(tmp_path, "dagster: {storage: postgres}\n"))
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == instance_config("postgres")
    (home / "dagster.yaml").write_text("telemetry: {enabled: true}\n# edited by hand\n")
    prepare_home(_workspace(tmp_path))
    assert "edited by hand" in (home / "dagster.yaml").read_text()


def test_a_deployed_home_without_dagster_yaml_is_a_clear_error(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path, f"dagster: {{home: {tmp_path / 'opt' / 'dagster_home'}}}\n")
    with pytest.raises(DagsterInstanceError, match=r"dagster_home/dagster.yaml does not exist: install infra/dagster"):
        prepare_home(workspace)


def test_a_deployed_home_is_used_as_it_is(tmp_path: Path) -> None:
    home = tmp_path / "opt" / "dagster_home"
    home.mkdir(parents=True)
    shipped = (INFRA / "dagster.yaml").read_text(encoding="utf-8")
    (home / "dagster.yaml").write_text(shipped, encoding="utf-8")
    workspace = _workspace(tmp_path, f"dagster: {{home: {home}}}\n")
    assert prepare_home(workspace) == home == dagster_home(workspace)
    assert (home / "dagster.yaml").read_text(encoding="utf-8") == shipped  # not rewritten
    assert not (workspace.state_dir / "dagster").exists()
