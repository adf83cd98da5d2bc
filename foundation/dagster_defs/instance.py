"""The Dagster instance a workspace's runs are recorded in: SQLite under the state folder by default, PostgreSQL by
settings (`dagster.storage: postgres` + the `DAGSTER_PG_*` environment variables), or a deployed `DAGSTER_HOME`
(`dagster.home`, e.g. the folder where `infra/dagster/dagster.yaml` is installed).

The Postgres configuration is the same as `infra/dagster/dagster.yaml` (a test keeps the two equal): the connection
comes from the environment at instance load, so no secret is ever written to a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from foundation.core.extras import missing_extra
from foundation.core.workspace import Workspace
from foundation.dagster_defs.dev_env import write_dagster_env

# dagster.yaml field of `postgres_db` -> the environment variable it is read from (Dagster's `env:` source).
POSTGRES_ENV = {
    "hostname": "DAGSTER_PG_HOST",
    "port": "DAGSTER_PG_PORT",
    "db_name": "DAGSTER_PG_DB",
    "username": "DAGSTER_PG_USER",
    "password": "DAGSTER_PG_PASSWORD",
}
MAX_CONCURRENT_RUNS = 4  # runs the queued coordinator lets start at once (the rest wait in the queue)
USECASE_TAG = "foundation/usecase"  # every run the platform starts carries it: the queue's limits are per use case
WAREHOUSE_POOL_LIMIT = 1  # DuckDB: one writer per database file, so one step at a time in the warehouse pool
HOME_DIR = "dagster"  # under the workspace's state folder
GENERATED_MARK = "# Dagster instance of"  # first words of every dagster.yaml foundation writes
EARLIER_DEFAULT = "telemetry:\n  enabled: false\n"  # what earlier versions wrote
# The SQLite event log foundation names (Dagster's, with its connections kept open); a generated dagster.yaml of an
# earlier version (Dagster's default event log) starts with GENERATED_MARK and is rewritten with it.
EVENT_LOG_MODULE = "foundation.dagster_defs.event_storage"
EVENT_LOG_CLASS = "KeptOpenSqliteEventLogStorage"


class DagsterInstanceError(RuntimeError):
    """The instance settings cannot work (a missing environment variable, a missing dagster.yaml)."""


def usecase_tags(usecase: str | None) -> dict[str, str]:
    """The run tag of a run of `usecase` (none for a run of the whole platform, such as maintenance)."""
    return {USECASE_TAG: usecase} if usecase else {}


def run_queue_config(runs_per_usecase: int) -> dict[str, Any]:
    """Pure: the queued coordinator's `concurrency.runs`: at most MAX_CONCURRENT_RUNS runs at once, and at most
    `runs_per_usecase` of each use case (so one use case's burst of runs cannot hold every slot)."""
    per_usecase = {"key": USECASE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": runs_per_usecase}
    return {"max_concurrent_runs": MAX_CONCURRENT_RUNS, "tag_concurrency_limits": [per_usecase]}


def instance_config(storage: str, home: Path | None = None, runs_per_usecase: int = 2) -> dict[str, Any]:
    """Pure: the dagster.yaml of an instance on `storage` (`sqlite` or `postgres`); `home` (the instance folder) is
    needed for SQLite, whose event log is named with its folder; `runs_per_usecase` (settings'
    `dagster.runs_per_usecase`) limits the production queue per use case."""
    config: dict[str, Any] = {"telemetry": {"enabled": False}}
    if storage != "postgres":
        if home is None:
            raise ValueError("an instance on SQLite needs its folder (home) for the event log's base_dir")
        # Dagster's default SQLite files in DAGSTER_HOME (runs launched in process); the event log's class keeps its
        # connections open (foundation/dagster_defs/event_storage.py; Dagster's opens one per event). Run and
        # schedule storage stay Dagster's defaults in the same folders.
        return {
            **config,
            "event_log_storage": {
                "module": EVENT_LOG_MODULE,
                "class": EVENT_LOG_CLASS,
                "config": {"base_dir": str(Path(home).absolute() / "history" / "runs") + os.sep},
            },
        }
    postgres_db: dict[str, Any] = {field: {"env": variable} for field, variable in POSTGRES_ENV.items()}
    # SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3; the driver installed (dagster-postgres') is psycopg2.
    postgres_db["scheme"] = "postgresql+psycopg2"
    return {
        "storage": {"postgres": {"postgres_db": postgres_db}},
        # Runs launched from the UI, schedules and sensors wait in a queue the daemon drains.
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
        "run_launcher": {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"},
        "concurrency": {
            "runs": run_queue_config(runs_per_usecase),
            # The only pool is the DuckDB warehouse's (dbt build, gold publish): one step at a time across all runs.
            "pools": {"default_limit": WAREHOUSE_POOL_LIMIT, "granularity": "op"},
        },
        "run_monitoring": {"enabled": True},
        **config,
    }


def render_instance_yaml(storage: str, home: Path | None = None, runs_per_usecase: int = 2) -> str:
    header = (
        "# Dagster instance of a Data Foundation platform on PostgreSQL (docs/operations.md#dagster-on-postgresql).\n"
        "# The connection is read from the environment when the instance loads: DAGSTER_PG_HOST, DAGSTER_PG_PORT,\n"
        "# DAGSTER_PG_DB, DAGSTER_PG_USER, DAGSTER_PG_PASSWORD. `foundation` writes the same file itself when\n"
        "# foundation.yaml says `dagster: {storage: postgres}`.\n"
        if storage == "postgres"
        else "# Dagster instance of a workspace on embedded defaults (SQLite in this folder; the event log keeps its\n"
        "# connections open and commits with synchronous=NORMAL: docs/operations.md#dagster-on-postgresql).\n"
    )
    return header + yaml.safe_dump(instance_config(storage, home, runs_per_usecase), sort_keys=False)


def missing_postgres_env(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    return [variable for variable in POSTGRES_ENV.values() if not environ.get(variable)]


def dagster_home(workspace: Workspace) -> Path:
    """The instance folder (DAGSTER_HOME) of the workspace."""
    configured = workspace.settings.dagster.home
    return Path(workspace.resolve(configured)) if configured else workspace.state_dir / HOME_DIR


def prepare_home(workspace: Workspace) -> Path:
    """The instance folder, ready to load: foundation writes its dagster.yaml (unless `dagster.home` points at a
    deployed one, used as it is) and checks the Postgres environment before Dagster fails on it less clearly."""
    settings = workspace.settings.dagster
    home = dagster_home(workspace)
    config = home / "dagster.yaml"
    if settings.home:
        if not config.is_file():
            raise DagsterInstanceError(
                f"dagster.home is {settings.home} but {config} does not exist: install infra/dagster/dagster.yaml "
                "there, or remove dagster.home to use the instance under the state folder"
            )
        return home
    home.mkdir(parents=True, exist_ok=True)
    text = render_instance_yaml(settings.storage, home, settings.runs_per_usecase)
    # Rewrite only a file we wrote (storage changed); a dagster.yaml someone edited by hand is theirs.
    current = config.read_text(encoding="utf-8") if config.exists() else None
    if current != text and (current is None or current.startswith(GENERATED_MARK) or current == EARLIER_DEFAULT):
        config.write_text(text, encoding="utf-8")
    if settings.storage == "postgres":
        missing_driver = missing_extra("dagster_postgres", "postgres", "dagster.storage: postgres")
        if missing_driver is not None:
            raise DagsterInstanceError(str(missing_driver))
        missing = missing_postgres_env(os.environ)
        if missing:
            raise DagsterInstanceError(
                f"dagster.storage is postgres but {', '.join(missing)} not set in the environment: set them "
                "(the password from your secret store), or set dagster.storage: sqlite"
            )
    write_dagster_env(workspace.root, home)  # so that `dagster dev -f definitions.py` opens this instance too
    return home


def dagster_instance(workspace: Workspace) -> Any:  # -> dg.DagsterInstance (import kept lazy: dagster is slow)
    """The workspace's persistent Dagster instance, so CLI runs show up in `foundation ui`."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(prepare_home(workspace)))
