"""`foundation daemon`: run the platform unattended (dagster-daemon, and dagster-webserver with --ui) on the
workspace's Dagster instance. What it runs: README, "Run it unattended"; docs/automation.md."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from foundation.cli.output import console
from foundation.cli.supervise import supervise
from foundation.core.workspace import WORKSPACE_ENV, Workspace

CODE_LOCATION = ["-m", "foundation.dagster_defs.workspace_defs"]  # the workspace from $FOUNDATION_WORKSPACE


def _tool(name: str) -> str:
    """A Dagster console script installed beside this interpreter (the same environment as foundation)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def daemon_commands(ui: bool, host: str, port: int) -> list[list[str]]:
    """Pure: the processes of an unattended platform."""
    commands = [[_tool("dagster-daemon"), "run", *CODE_LOCATION]]
    if ui:
        commands.append([_tool("dagster-webserver"), *CODE_LOCATION, "--host", host, "--port", str(port)])
    return commands


def daemon(
    ui: Annotated[bool, typer.Option("--ui", help="Also serve the Dagster UI (dagster-webserver).")] = False,
    host: Annotated[str, typer.Option(help="Interface of the UI (with --ui).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the UI (with --ui).")] = 3000,
) -> None:
    """Run the platform with nobody at the keyboard: `dagster-daemon` on this workspace's Dagster instance.

    It starts the sources' cron schedules, their new-files sensors (`load: {on_new_files: true}`), the
    automation sensor that refreshes dbt models, gold and ML assets when their inputs change (`automation:`
    in foundation.yaml, docs/automation.md), the retraining sensor, and the queue of runs. `--ui` also serves
    the Dagster UI on the same instance. Stops on Ctrl+C or SIGTERM; `foundation status` shows what it did.
    """
    # lazy: the foundation.dagster_defs package imports dagster (seconds); `foundation --help` must not pay for it
    from foundation.dagster_defs.instance import prepare_home

    workspace = Workspace.open()
    home = prepare_home(workspace)
    env = {**os.environ, "DAGSTER_HOME": str(home), WORKSPACE_ENV: str(workspace.root)}
    console.print(f"Dagster instance: {home}")
    if ui:
        console.print(f"Dagster UI on http://{host}:{port}")
    console.print("dagster-daemon running (Ctrl+C to stop)")
    code = supervise(daemon_commands(ui, host, port), env, workspace.root)
    raise typer.Exit(code)
