"""`foundation`: the command line of a Data Foundation workspace.

Every command acts on the workspace of the current folder (the nearest one upwards holding
foundation.yaml), or on `--workspace DIR`. Listing and report commands take `--json`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from foundation.cli.docs_command import docs_cli
from foundation.cli.kpi_command import kpi_app
from foundation.cli.output import console, err_console, print_json, print_table
from foundation.cli.run_command import run_cli
from foundation.core.settings_profiles import PROFILE_ENV
from foundation.core.workspace import WORKSPACE_ENV, Workspace
from foundation.specs.errors import SpecError, SpecValidationError

app = typer.Typer(
    help="Data Foundation: sources declared in YAML, landed in a Delta lakehouse under quality rules, modelled with "
    "dbt into KPIs, trained and served as models; Dagster orchestrates it all.\n\n"
    "Start with `foundation demo`, then `foundation check`, `foundation sources list`, `foundation run`, "
    "`foundation quality`, `foundation kpi list`, `foundation models list`, `foundation serve`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
sources_app = typer.Typer(help="Inspect the declared sources.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
app.add_typer(kpi_app, name="kpi")
app.command("run")(run_cli)
app.command("docs")(docs_cli)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]


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
    if workspace is not None:
        os.environ[WORKSPACE_ENV] = str(workspace.resolve())
    if profile is not None:
        os.environ[PROFILE_ENV] = profile


def _open() -> Workspace:
    return Workspace.open()


def _print_spec_errors(errors: list[SpecError], root: Path) -> None:
    for error in errors:
        colour = "red" if error.severity == "error" else "yellow"
        err_console.print(f"[{colour}]{error.severity}[/{colour}] ", end="", highlight=False)
        err_console.print(error.format(relative_to=root), markup=False, highlight=False, soft_wrap=True)


def _fail_on_spec_errors(exc: SpecValidationError, root: Path) -> None:
    _print_spec_errors(exc.errors, root)
    err_console.print(f"[red]{len(exc.errors)} error(s) in the workspace YAML; fix them (see `foundation check`).")
    raise typer.Exit(1)


ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="Settings profile to use (default: $FOUNDATION_PROFILE, else local)."),
]


@app.command()
def check(json_output: JsonFlag = False, profile: ProfileOption = None) -> None:
    """Validate every YAML of the workspace; report all errors at once as file:line: field: message.

    With --profile P, also validate that settings profile of foundation.yaml without connecting to anything:
    types and known keys, secrets only as ${VAR}, every ${VAR} unset here listed (run `foundation doctor` to connect).
    """
    from foundation.core.settings import FoundationSettings, LakehouseSettings
    from foundation.core.settings_profiles import check_profile, selected_profile
    from foundation.core.workspace import find_workspace
    from foundation.engine.lakehouse.object_store import is_remote
    from foundation.platform.check import check_workspace

    root = find_workspace()
    name = selected_profile(profile)
    settings, errors = check_profile(root, name)
    settings = settings or FoundationSettings()
    if is_remote(settings.lakehouse.root):  # check never connects: the checks peeking at tables look locally
        settings = settings.model_copy(update={"lakehouse": LakehouseSettings()})
    workspace = Workspace(root=root, settings=settings, profile=name)
    errors += check_workspace(workspace)
    n_errors = sum(1 for e in errors if e.severity == "error")
    if json_output:
        print_json({"ok": n_errors == 0, "errors": [e.to_dict() for e in errors]})
    else:
        _print_spec_errors(errors, workspace.root)
        n_sources = len(workspace.scan.sources)
        if n_errors:
            err_console.print(f"[red]{n_errors} error(s)[/red], {len(errors) - n_errors} warning(s)")
        else:
            console.print(
                f"[green]ok[/green]: profile {name}: {n_sources} source(s) in {len(workspace.scan.usecases)} "
                f"use case(s), {len(errors)} warning(s)"
            )
    raise typer.Exit(1 if n_errors else 0)


@sources_app.command("list")
def sources_list(json_output: JsonFlag = False) -> None:
    """List every source: use case, extract type, load mode, schedule, owner, and its bronze table."""
    from foundation.engine.lakehouse.bronze import BronzeTable

    workspace = _open()
    try:
        sources = workspace.sources()
    except SpecValidationError as exc:
        _fail_on_spec_errors(exc, workspace.root)
    items = []
    for source in sources:
        table = BronzeTable(
            workspace.bronze_uri(source.usecase, source.name), workspace.settings.lakehouse.storage_options
        )
        items.append(
            {
                "usecase": source.usecase,
                "source": source.name,
                "extract": source.spec.extract.type,
                "mode": source.spec.load.mode,
                "partitions": source.spec.partitions.by if source.spec.partitions else None,
                "schedule": source.spec.schedule,
                "owner": source.spec.owner,
                "columns": len(source.spec.columns) or "inferred",
                "delta_version": table.version(),
                "rows": table.row_count(),
                "yaml": str(source.path.relative_to(workspace.root)),
            }
        )
    if json_output:
        print_json(items)
        return
    print_table(
        "Sources",
        ["use case", "source", "extract", "mode", "schedule", "owner", "rows", "version"],
        [
            [
                i["usecase"],
                i["source"],
                i["extract"],
                f"{i['mode']}, {i['partitions']} partitions" if i["partitions"] else i["mode"],
                i["schedule"],
                i["owner"],
                "-" if i["rows"] is None else f"{i['rows']:,}",
                "-" if i["delta_version"] is None else i["delta_version"],
            ]
            for i in items
        ],
        right=["rows", "version"],
    )


@app.command()
def ingest(
    selectors: Annotated[
        list[str] | None,
        typer.Argument(help="Use cases or sources (`usecase`, `source` or `usecase/source`); all by default."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Land sources in the bronze lakehouse (Dagster assets, run in process). Exit 1 if any load failed."""
    from foundation.cli.ingest_command import print_reports, run_ingest

    workspace = _open()
    try:
        sources = workspace.select_sources(selectors)
    except SpecValidationError as exc:
        _fail_on_spec_errors(exc, workspace.root)
    except LookupError as exc:
        err_console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from exc
    listener = run_ingest(workspace, sources, show_progress=not json_output and sys.stderr.isatty())
    if json_output:
        print_json(
            {
                "reports": [listener.reports[s.key].to_dict() for s in sources if s.key in listener.reports],
                "errors": {k: str(v) for k, v in listener.errors.items()},
                "skipped": listener.skipped,
            }
        )
    else:
        print_reports(workspace, listener, sources)
    not_run = [s for s in sources if s.key not in listener.reports and s.key not in listener.skipped]
    failed = listener.errors or not_run or listener.failed_checks()
    raise typer.Exit(1 if failed else 0)


@app.command()
def sql(
    query: Annotated[
        str, typer.Argument(help='SQL over the lakehouse, e.g. "select count(*) from bronze.<uc>__<source>"')
    ],
    json_output: JsonFlag = False,
    limit: Annotated[int, typer.Option(help="Rows to print at most.")] = 50,
) -> None:
    """Query the lakehouse with DuckDB: every bronze table is a view `bronze.<usecase>__<source>`."""
    import duckdb

    from foundation.engine.lakehouse.catalog import register_bronze

    workspace = _open()
    con = duckdb.connect()
    register_bronze(con, workspace.lakehouse_root, workspace.settings.lakehouse.storage_options)
    try:
        cursor = con.execute(query)
    except duckdb.Error as exc:
        err_console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from exc
    columns = [d[0] for d in cursor.description or []]
    rows = cursor.fetchmany(limit)
    if json_output:
        print_json([dict(zip(columns, r, strict=True)) for r in rows])
    else:
        print_table("", columns, rows)


def _register_demo_commands() -> None:
    from foundation.cli.demo_command import register

    register(app, _open)  # `foundation demo` and `foundation demo serve`


_register_demo_commands()


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port of the Dagster UI.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Open the Dagster UI (`dagster dev`) on this workspace: the asset graph, runs, schedules."""
    from foundation.dagster_defs.instance import prepare_home

    workspace = _open()
    home = prepare_home(workspace)  # the instance folder and its dagster.yaml (SQLite, or Postgres by settings)
    env = {**os.environ, "DAGSTER_HOME": str(home), WORKSPACE_ENV: str(workspace.root)}
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "foundation.dagster_defs.workspace_defs",
        "--host",
        host,
        "--port",
        str(port),
    ]
    console.print(f"Dagster UI on http://{host}:{port} (Ctrl+C to stop)")
    from foundation.cli.supervise import supervise

    raise typer.Exit(supervise([command], env, workspace.root))


def _register_daemon_command() -> None:
    from foundation.cli.daemon_command import register

    register(app, _open)


_register_daemon_command()


def _register_status_command() -> None:
    from foundation.cli.status_command import register

    register(app, _open)


_register_status_command()


def _register_quality_commands() -> None:
    from foundation.cli.quality_cli import register

    register(app, _open)


_register_quality_commands()


def _register_ml_commands() -> None:
    from foundation.cli.ml_command import register

    register(app, _open)


_register_ml_commands()


def _register_serve_command() -> None:
    from foundation.cli.serve_command import register

    register(app, _open)


_register_serve_command()


def _register_doctor_command() -> None:
    from foundation.cli.doctor_command import register

    register(app)


_register_doctor_command()


def _register_maintenance_command() -> None:
    from foundation.cli.maintenance_command import register

    register(app, _open)


_register_maintenance_command()


def _register_scaffold_and_portfolio_commands() -> None:
    from foundation.cli.portfolio_command import register as register_portfolio
    from foundation.cli.scaffold_command import register as register_scaffold

    register_scaffold(app, _open)
    register_portfolio(app, _open)


_register_scaffold_and_portfolio_commands()


def _register_backfill_command() -> None:
    from foundation.cli.backfill_command import register

    register(app)


_register_backfill_command()


if __name__ == "__main__":
    app()
