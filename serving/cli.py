"""`foundation serve [--host --port --workers]`: the inference API with uvicorn (registered by foundation.cli.main)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated

import typer

from foundation.workspace import WORKSPACE_ENV, Workspace

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer, open_workspace: Callable[[], Workspace]) -> None:
    @app.command()
    def serve(
        host: Annotated[str | None, typer.Option(help="Interface to listen on (default: api.host).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default: api.port).")] = None,
        workers: Annotated[int, typer.Option(min=1, help="Worker processes (each loads every champion).")] = 1,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    ) -> None:
        """Serve the champion of every registered model over HTTP (+ the KPI catalogue); OpenAPI at /docs."""
        import uvicorn

        from foundation.cli.output import err_console
        from serving.app import create_app
        from serving.deps import keys_from_environment

        workspace = open_workspace()
        api = workspace.settings.api
        host = host or api.host
        port = port or api.port
        try:
            keys = keys_from_environment()
        except ValueError as exc:
            err_console.print(f"[red]error[/red] {exc}")
            raise typer.Exit(2) from exc
        if api.open:
            where = "" if host in LOOPBACK else f" [red]on {host}, reachable from other machines[/red]"
            err_console.print(f"[yellow]warning[/yellow] the API is open (api.open: true): no key is asked{where}")
        elif not keys:
            err_console.print("[yellow]warning[/yellow] FOUNDATION_API_KEYS is empty: every call but /health gets 401")
        err_console.print(f"Inference API on http://{host}:{port} (docs: /docs; Ctrl+C to stop)")
        if workers > 1:  # each worker process builds its own app from the factory
            os.environ[WORKSPACE_ENV] = str(workspace.root)
            uvicorn.run(
                "serving.app:create_app", factory=True, host=host, port=port, workers=workers, log_level=log_level
            )
        else:
            uvicorn.run(create_app(workspace.root, workspace.settings), host=host, port=port, log_level=log_level)
