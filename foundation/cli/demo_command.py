"""`foundation demo` (the shipped use case end to end) and `foundation demo serve` (its local services, kept up)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from types import FrameType
from typing import Annotated

import typer

from foundation.cli.output import console, err_console
from foundation.core.workspace import Workspace

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]

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


def register(app: typer.Typer, open_workspace: Callable[[], Workspace]) -> None:
    demo_app = typer.Typer(
        help="Run the shipped demo end to end (`foundation demo`), or serve its local REST API and web page "
        "(`foundation demo serve`).",
        invoke_without_command=True,
    )
    app.add_typer(demo_app, name="demo")

    @demo_app.callback()
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
        from foundation.demo.run import run_demo

        workspace = open_workspace()
        ok = run_demo(workspace, trucks=trucks, days=days, seed=seed, json_output=json_output)
        raise typer.Exit(0 if ok else 1)

    @demo_app.command("serve", help=SERVE_HELP)
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
        from foundation.demo.fleet_data import FleetSize
        from foundation.demo.run import DEMO_USECASE
        from foundation.demo.serve import (
            ServeError,
            command_not_found,
            demo_services,
            ensure_landing,
            export_lines,
            token_from_environment,
        )

        workspace = open_workspace()
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
                    if json_output:
                        print(json.dumps(environment), flush=True)
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
