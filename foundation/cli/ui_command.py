"""`foundation ui`: the Dagster UI (`dagster dev`) on the workspace's instance."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from foundation.cli.output import console, fail
from foundation.cli.ports import busy_port_message, port_in_use
from foundation.cli.supervise import supervise
from foundation.core.workspace import WORKSPACE_ENV, Workspace


def ui(
    port: Annotated[int, typer.Option(help="Port of the Dagster UI.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Open the Dagster UI (`dagster dev`) on this workspace: the asset graph, runs, schedules."""
    if port_in_use(host, port):  # before Dagster starts: its webserver would fail only after loading the code
        fail("ui", busy_port_message(host, port, ""), json_output=False)
    # lazy: the package foundation.dagster_defs imports dagster (seconds), which `foundation --help` must not pay
    from foundation.dagster_defs.instance import prepare_home

    workspace = Workspace.open()
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
    raise typer.Exit(supervise([command], env, workspace.root))
