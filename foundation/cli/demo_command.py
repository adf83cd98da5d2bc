"""`foundation demo` (the shipped use case end to end) and `foundation demo serve` (its local services, kept up)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from foundation.cli.ingest_command import print_reports, progress_bar
from foundation.cli.ml_command import print_train_stage, train_stage
from foundation.cli.output import JsonFlag, console, err_console, fail_on_spec_errors, print_result, print_table
from foundation.core.workspace import Workspace
from foundation.demo.fleet_data import DEMO_USECASE, FleetSize
from foundation.demo.serve import (
    ServeError,
    command_not_found,
    demo_services,
    ensure_landing,
    export_lines,
    token_from_environment,
)
from foundation.specs.errors import SpecValidationError

if TYPE_CHECKING:
    from foundation.demo.run import DemoResult

HELP = (
    "Run the shipped demo end to end (`foundation demo`), or serve its local REST API and web page "
    "(`foundation demo serve`)."
)

SERVE_HELP = (
    "Serve the demo's workshop REST API and depot page on 127.0.0.1 until Ctrl-C, outside `foundation demo`.\n\n"
    "The fleet_maintenance sources `maintenance` and `failures` (rest_api) and `depots` (html_table) read them "
    "through ${WORKSHOP_API_URL}, ${WORKSHOP_TOKEN} and ${DEPOT_PAGE_URL}. `foundation demo` serves them only while "
    "it ingests. To ingest or run that use case at any other time, keep them up here and export what this prints in "
    "the shell that runs `foundation ingest fleet_maintenance`, `foundation run` or `make run`:\n\n"
    "    foundation demo serve        (Ctrl-C stops)\n\n"
    "or give a command after `--`: it runs with the variables set, the services stop when it ends, and its exit "
    "code is this command's:\n\n"
    "    foundation demo serve -- foundation run fleet_maintenance\n\n"
    "The demo's landing files (what the services serve) are generated first when missing. The token is a fresh "
    "random one, or $WORKSHOP_TOKEN when set, so a restarted serve on the same ports matches what the shell holds."
)


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # the same clean stop as Ctrl-C: servers shut, environment restored

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl+C stops us even where SIGINT came in ignored


def demo(
    ctx: typer.Context,
    trucks: Annotated[int, typer.Option(help="Trucks in the generated fleet.")] = 40,
    days: Annotated[int, typer.Option(help="Days of hourly telemetry.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the deterministic generator.")] = 7,
    json_output: JsonFlag = False,
) -> None:
    """Run the shipped demo end to end on embedded defaults: generate the fleet's landing files, check, ingest
    under the quality rules, build the dbt model and KPIs, train and register the champion.

    Its REST and HTML sources are served only while it ingests; `foundation demo serve` keeps them up."""
    if ctx.invoked_subcommand is not None:
        return
    from foundation.demo.run import run_demo_ingestion, run_demo_model  # lazy: dagster, dbt, duckdb (seconds)

    workspace = Workspace.open()
    say = (lambda _: None) if json_output else (lambda line: console.print(line))
    if not json_output:
        console.rule("[bold]Data Foundation demo: fleet_maintenance")
    with progress_bar(enabled=not json_output) as progress:  # live during the ingestion only
        result = run_demo_ingestion(workspace, FleetSize(trucks=trucks, days=days, seed=seed), say, progress)
    if result.check_errors:
        fail_on_spec_errors(SpecValidationError(result.check_errors), workspace.root, "demo" if json_output else None)
    if result.ingested:
        result.signal, result.model = run_demo_model(workspace)
    # usecases/<uc>/ml/*.yaml: the model stage's run trained them; the models it did not train are trained now
    trained = result.model["summary"]["training"] if result.model is not None else {}
    training = train_stage(workspace, DEMO_USECASE, trained) if result.ok and result.model is not None else None
    ok = result.ok and (training is None or training["ok"])
    red = red_checks(workspace) if result.model is not None else []
    if json_output:
        errors = [{"message": f"{key}: {error}", "source": key} for key, error in result.ingest.errors.items()]
        errors += [] if training is None or training["ok"] else [{"message": "training failed", "step": "train"}]
        print_result(
            "demo",
            {
                "landing_rows": result.landing.rows,
                "landing_bad_rows": result.landing.bad_rows,
                "landing_glitch_rows": result.landing.glitch_rows,
                "reports": [r.to_dict() for r in result.ingest.reports.values()],
                "signal": [list(row) for row in result.signal],
                "model": result.model,
                "training": training,
                "red_monitoring_checks": red,
                "seconds": round(time.time() - result.started_at, 2),
            },
            ok=ok,
            errors=errors,
        )
    else:
        print_demo(workspace, result, training, ok, red)
    raise typer.Exit(0 if ok else 1)


def red_checks(workspace: Workspace) -> list[dict[str, Any]]:
    """The demo's ML monitoring checks that failed (a drifting feature, realised performance under its floor)."""
    from foundation.platform.quality_report import red_monitoring_checks  # lazy: the Dagster instance, as above

    return [{**r, "checked_at": str(r["checked_at"])} for r in red_monitoring_checks(workspace)]


def print_red_checks(red: list[dict[str, Any]]) -> None:
    console.print(f"[yellow]{len(red)} ML monitoring check(s) are red[/] (`foundation quality` lists every check):")
    for r in red:
        console.print(f"  [red]{r['check']}[/] {r['source']}: {r['observed']}")
    console.print("  docs/mlops.md#monitoring says how to read them (a drifting feature, realised performance).")


def print_demo(
    workspace: Workspace, result: DemoResult, training: dict[str, Any] | None, ok: bool, red: list[dict[str, Any]]
) -> None:
    print_reports(workspace, result.ingest, result.sources)
    if result.signal:
        print_table(
            "The signal to learn: sensors before failures (from bronze, via DuckDB)",
            ["period", "readings", "engine °C", "oil kPa", "vibration mm/s"],
            result.signal,
            right=["readings", "engine °C", "oil kPa", "vibration mm/s"],
        )
        print_model_stage(result.model)
    if result.model is not None and result.model["ok"]:
        print_train_stage(training)
    if red:
        print_red_checks(red)
    done = f"[yellow]done, {len(red)} monitoring check(s) red" if red else "[green]done"
    console.print(
        f"{done if ok else '[red]failed'}[/] in {time.time() - result.started_at:.1f}s. Next: "
        "`foundation ui` (asset graph), `foundation sources list`, "
        '`foundation sql "select * from bronze.fleet_maintenance__engine_telemetry limit 5"`, '
        "`foundation demo serve` (the REST API and web page, for `foundation run` later)"
    )


def serve(
    command: Annotated[
        list[str] | None,
        typer.Argument(help="A command to run with the variables set (after `--`); the services stop after it."),
    ] = None,
    api_port: Annotated[int, typer.Option(help="Port of the workshop API (0: a free one).")] = 0,
    page_port: Annotated[int, typer.Option(help="Port of the depot page (0: a free one).")] = 0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the variables as one JSON object (for scripts) instead.")
    ] = False,
) -> None:
    workspace = Workspace.open()
    landing_root = workspace.root / "landing" / DEMO_USECASE
    if ensure_landing(landing_root, FleetSize()):
        err_console.print(f"generated the demo's landing files in {landing_root} (`foundation demo` writes them)")
    _stop_on_sigterm()
    try:
        with demo_services(landing_root, api_port, page_port, token_from_environment()) as services:
            environment = services.environment()
            if command:
                err_console.print(f"workshop API on {services.api_url}, depot page on {services.depot_page_url}")
                try:
                    code = subprocess.call(command, cwd=workspace.root)  # inherits the variables just set
                except FileNotFoundError:
                    err_console.print(f"[red]error[/red] {command_not_found(command)}")
                    code = 127
                raise typer.Exit(code)
            try:  # from the first line printed on: a client may stop us as soon as it has read it
                if json_output:  # one line: a script reads it, then may stop us
                    print(
                        json.dumps({"ok": True, "command": "demo serve", "data": environment, "errors": []}), flush=True
                    )
                else:
                    console.print(
                        f"Serving the demo's workshop API on {services.api_url} and depot page on "
                        f"{services.depot_page_url}.\nIn the shell that ingests or runs fleet_maintenance, "
                        "export:",
                        highlight=False,
                    )
                    print("\n".join(export_lines(environment)), flush=True)
                    console.print("Ctrl-C stops them.", highlight=False)
                while True:  # bounded sleeps: a signal handled on a server thread still stops us
                    time.sleep(0.5)
            except KeyboardInterrupt:
                err_console.print("stopped the demo services")
    except ServeError as exc:
        err_console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from None


DEMO_KPIS = ("fleet_availability", "failures_per_1000_hours", "mtbf_hours", "mttr_hours", "data_freshness_hours")


def print_model_stage(stage: dict[str, Any] | None) -> None:
    if stage is None:
        console.print("no dbt project in this workspace: data model and KPIs skipped (see docs/data-model.md)")
        return
    summary = stage["summary"]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary["dbt_counts"].items()))
    console.print(f"Data model (dbt through Dagster): {counts or 'not run'} in {summary['seconds']:.1f}s")
    for problem in summary["problems"]:
        console.print(f"[red]{problem['status']}[/red] {problem['file']}: {problem['node']}: {problem['message']}")
    shown = sorted(stage["kpis"], key=lambda k: (k["id"] not in DEMO_KPIS, k["id"]))
    print_table(
        "KPIs (foundation kpi list / show NAME)",
        ["kpi", "latest period", "value", "target", "state"],
        [
            [
                k["label"],
                f"{k['latest']['period']} ({k['grain']})" if k["latest"] else "-",
                "-" if not k["latest"] or k["latest"]["value"] is None else f"{k['latest']['value']:,.2f} {k['unit']}",
                "-" if k.get("target") is None else f"{k['target']:,.2f} {k['unit']}",
                k["state"].replace("_", " "),
            ]
            for k in shown
        ],
        right=["value", "target"],
    )
