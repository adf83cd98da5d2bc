"""`foundation migrate mlflow|dagster`: move the embedded stores to the production ones: the MLflow store (SQLite, local
artifacts -> PostgreSQL, object storage; mlops/store_migration.py) and Dagster's run history (SQLite -> PostgreSQL;
foundation/dagster_defs/migrate_runs.py). docs/operations.md#migrations."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated

import typer

from foundation.cli.output import JsonFlag, console, fail, print_result, print_table, tool_output_to
from foundation.core.extras import missing_extra
from foundation.core.workspace import Workspace

TARGET_ENV = "MLFLOW_BACKEND_STORE_URI"  # the same variables as the shipped server (infra/mlflow/mlflow-server.sh)
ARTIFACTS_ENV = "MLFLOW_ARTIFACTS_DESTINATION"


class Store(StrEnum):
    mlflow = "mlflow"
    dagster = "dagster"


def migrate(
    store: Annotated[
        Store,
        typer.Argument(help="What to move: mlflow (tracking store, registry, artifacts) or dagster (run history)."),
    ],
    json_output: JsonFlag = False,
) -> None:
    """Move the embedded MLflow store or Dagster run history to PostgreSQL (and MLflow's artifacts to object storage).

    `foundation migrate dagster`: every run of the workspace's SQLite instance, with its events (materialisations,
    check results) and snapshots, into the PostgreSQL of DAGSTER_PG_HOST/PORT/DB/USER/PASSWORD (the instance
    `dagster.storage: postgres` uses). Runs already there are skipped, so it can run again after an interruption
    or to catch up; then switch `dagster.storage` to postgres.

    `foundation migrate mlflow`: the source is the selected profile's `mlflow.tracking_uri` (a sqlite:///
    store) and `mlflow.artifact_root`. The target is what the tracking server will use, from the environment:
    MLFLOW_BACKEND_STORE_URI (postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB, a new empty database) and
    MLFLOW_ARTIFACTS_DESTINATION (e.g. s3://bucket/mlflow-artifacts; object-store credentials from the AWS_*
    variables, as for the server). Ids, versions, the `champion` alias, runs, metrics and tags are kept;
    artifact locations become mlflow-artifacts:/... served by the server. The tables are copied in one
    transaction: after a failure the target is empty and the command can run again. Then point the production
    profile's `mlflow.tracking_uri` at the server. The promotion history lives in the lakehouse and moves with it."""
    command = f"migrate {store.value}"
    workspace = Workspace.open()
    if store == Store.dagster:
        migrate_dagster(workspace, command, json_output)
    else:
        migrate_mlflow(workspace, command, json_output)


def migrate_dagster(workspace: Workspace, command: str, json_output: bool) -> None:
    missing_driver = missing_extra("dagster_postgres", "postgres", "foundation migrate dagster")
    if missing_driver is not None:
        fail(command, str(missing_driver), json_output)
    from dagster_postgres.utils import DagsterPostgresException  # lazy: SQLAlchemy and Dagster, not for --help
    from sqlalchemy.exc import OperationalError

    from foundation.dagster_defs.instance import POSTGRES_ENV, missing_postgres_env
    from foundation.dagster_defs.migrate_runs import migrate_workspace_runs

    if workspace.settings.dagster.storage != "sqlite" or workspace.settings.dagster.home:
        fail(
            command,
            "dagster.storage must be sqlite (the instance to move from): run without the production profile",
            json_output,
        )
    missing = missing_postgres_env(os.environ)
    if missing:
        fail(command, f"{', '.join(missing)} not set: export the target PostgreSQL's connection", json_output)
    try:
        with tool_output_to(workspace.state_dir / "logs" / "migrate.log"):  # Dagster's retry warnings
            report = migrate_workspace_runs(workspace)
    except FileNotFoundError as exc:
        fail(command, str(exc), json_output, code=1)
    except (OperationalError, DagsterPostgresException) as exc:
        variables = ", ".join(POSTGRES_ENV.values())
        fail(command, f"{variables}: cannot connect ({type(exc).__name__})", json_output, code=1)
    if json_output:
        print_result(command, report.to_dict())
        return
    console.print(
        f"{report.runs} run(s) copied with {report.events} event(s); {report.already} already there", highlight=False
    )


def migrate_mlflow(workspace: Workspace, command: str, json_output: bool) -> None:
    from mlops.registry import artifact_root, tracking_uri  # lazy: MLflow and SQLAlchemy, not for --help
    from mlops.store_migration import StoreMigrationError, migrate_store

    source = tracking_uri(workspace)
    if not source.startswith("sqlite:///"):
        fail(command, f"mlflow.tracking_uri is {source.split(':', 1)[0]}://..., not a sqlite:/// store", json_output)
    target = os.environ.get(TARGET_ENV)
    if not target:
        fail(
            command,
            f"{TARGET_ENV} is not set: export the target database's URL (password from your vault)",
            json_output,
        )
    try:
        with tool_output_to(workspace.state_dir / "logs" / "migrate.log"):  # MLflow's INFO lines
            report = migrate_store(source, target, artifact_root(workspace), os.environ.get(ARTIFACTS_ENV))
    except StoreMigrationError as exc:
        fail(command, str(exc), json_output, code=1)
    if json_output:
        print_result(command, report.to_dict())
        return
    print_table("MLflow store copied", ["table", "rows"], sorted(report.rows.items()), right=["rows"])
    where = f" to {report.artifacts_to}" if report.artifacts_to else " (none: MLFLOW_ARTIFACTS_DESTINATION unset)"
    console.print(f"{report.artifact_files} artifact file(s) copied{where}", highlight=False)
