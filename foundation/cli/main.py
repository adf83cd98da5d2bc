"""`foundation`: the command line of a Data Foundation workspace.

Every command acts on the workspace of the current folder (the nearest one upwards holding
foundation.yaml), or on `--workspace DIR`. Listing and report commands take `--json`.

Each command is a plain function in its own `*_command` module; this module registers them all, one line each
(`<group>.command("name")(module.function)`), so the whole command tree reads here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from foundation.cli import (
    backfill_command,
    check_command,
    daemon_command,
    demo_command,
    docs_command,
    doctor_command,
    ingest_command,
    kpi_command,
    maintenance_command,
    migrate_command,
    ml_command,
    portfolio_command,
    quality_command,
    run_command,
    scaffold_command,
    serve_command,
    sources_command,
    sql_command,
    status_command,
    tables_command,
    ui_command,
)
from foundation.core.settings_profiles import PROFILE_ENV
from foundation.core.workspace import WORKSPACE_ENV

app = typer.Typer(
    help="Data Foundation: sources declared in YAML, landed in a Delta lakehouse under quality rules, modelled with "
    "dbt into KPIs, trained and served as models; Dagster orchestrates it all.\n\n"
    "Start with `foundation demo`, then `foundation check`, `foundation sources list`, `foundation run`, "
    "`foundation quality`, `foundation kpi list`, `foundation models list`, `foundation serve`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace", "-w", help="Workspace folder (default: the one holding foundation.yaml).", file_okay=False
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="Settings profile of foundation.yaml (`local`, `production`...; default: $FOUNDATION_PROFILE, "
            "else local). See docs/operations.md.",
        ),
    ] = None,
) -> None:
    # MLflow would install its own console handler at import: its INFO lines go to our logs instead (library_output)
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    if workspace is not None:
        os.environ[WORKSPACE_ENV] = str(workspace.resolve())
    if profile is not None:
        os.environ[PROFILE_ENV] = profile


def group(name: str, help: str, **options: Any) -> typer.Typer:
    """A command group (`foundation NAME ...`)."""
    sub = typer.Typer(help=help, **{"no_args_is_help": True, **options})
    app.add_typer(sub, name=name)
    return sub


sources = group("sources", sources_command.HELP)
kpi = group("kpi", kpi_command.HELP)
usecase = group("usecase", scaffold_command.USECASE_HELP)
demo = group("demo", demo_command.HELP, invoke_without_command=True, no_args_is_help=False)
models = group("models", ml_command.MODELS_HELP)

# Commands, in the order of `foundation --help`: one line each.
app.command("check")(check_command.check)
sources.command("list")(sources_command.sources_list)
sources.command("new")(sources_command.sources_new)
app.command("ingest")(ingest_command.ingest)
app.command("sql")(sql_command.sql)
app.command("tables")(tables_command.tables)
demo.callback()(demo_command.demo)
demo.command("serve", help=demo_command.SERVE_HELP)(demo_command.serve)
app.command("ui")(ui_command.ui)
app.command("daemon")(daemon_command.daemon)
app.command("status")(status_command.status)
app.command("quality")(quality_command.quality)
app.command("profile")(quality_command.profile)
app.command("run")(run_command.run)
kpi.command("list")(kpi_command.kpi_list)
kpi.command("show")(kpi_command.kpi_show)
kpi.command("new")(kpi_command.kpi_new)
app.command("docs")(docs_command.docs_cli)
app.command("train")(ml_command.train)
models.command("list")(ml_command.models_list)
models.command("show")(ml_command.models_show)
models.command("promote")(ml_command.models_promote)
models.command("rollback")(ml_command.models_rollback)
models.command("challenger")(ml_command.models_challenger)
app.command("serve")(serve_command.serve)
app.command("doctor")(doctor_command.doctor)
app.command("maintenance")(maintenance_command.maintenance)
app.command("migrate")(migrate_command.migrate)
app.command("init")(scaffold_command.init)
usecase.command("new")(scaffold_command.usecase_new)
usecase.command("list")(scaffold_command.usecase_list)
app.command("portfolio")(portfolio_command.portfolio)
app.command("backfill")(backfill_command.backfill)


if __name__ == "__main__":
    app()
