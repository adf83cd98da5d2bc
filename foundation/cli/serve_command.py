"""`foundation serve [--host --port --workers]`: the inference API with uvicorn (registered by foundation.cli.main)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from typing import Annotated

import typer

from foundation.cli.output import err_console, fail
from foundation.cli.ports import busy_port_message, port_in_use
from foundation.cli.reachability import require_reachable
from foundation.core.workspace import WORKSPACE_ENV, Workspace

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default: api.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: api.port).")] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Worker processes (each loads every champion; metrics are aggregated)."),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="Log level (info: one JSON line per request).")] = "info",
) -> None:
    """Serve the champion of every registered model over HTTP (+ the KPI catalogue); OpenAPI at /docs.

    The API follows the registry: when a `champion` alias moves (`foundation models promote|rollback`), the
    new version is served within api.reload_interval_s seconds, without a restart. Every prediction is
    appended to the lakehouse (<lakehouse>/ml/<usecase>/<model>/api_predictions; api.prediction_log: false
    to turn it off). Logs are JSON lines on stderr (api.log_format: text for humans). See docs/api.md."""
    workspace = Workspace.open()
    require_reachable(workspace, "serve", False)
    api = workspace.settings.api
    host = host or api.host
    port = port or api.port
    if port_in_use(host, port):  # before the models load: uvicorn would find out only after, then exit
        fail("serve", busy_port_message(host, port, "api.port"), json_output=False)
    # lazy: uvicorn, FastAPI and MLflow (seconds); `foundation --help` must not pay for them
    import uvicorn

    from serving.app import create_app
    from serving.deps import keys_from_environment
    from serving.logs import log_config
    from serving.metrics import MULTIPROC_ENV

    # MLflow installs its own log handler at import unless told not to: its lines would escape our format
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
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
    logging = {"log_config": log_config(api.log_format, log_level), "log_level": log_level, "access_log": False}
    if workers > 1:  # each worker process builds its own app from the factory
        os.environ[WORKSPACE_ENV] = str(workspace.root)
        # one browser-session secret for all the workers, or each refuses the others' cookies (serving.auth_session)
        os.environ.setdefault("FOUNDATION_SESSION_SECRET", secrets.token_urlsafe(32))
        # prometheus-client's multiprocess mode: every worker writes its values under one folder, /metrics
        # (answered by any worker) aggregates them; a fresh folder per run so no stale values are summed.
        created = None
        if not os.environ.get(MULTIPROC_ENV):
            created = tempfile.mkdtemp(prefix="foundation-metrics-")
            os.environ[MULTIPROC_ENV] = created
        try:
            uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers, **logging)
        finally:
            if created:
                shutil.rmtree(created, ignore_errors=True)
    else:
        uvicorn.run(create_app(workspace.root, workspace.settings), host=host, port=port, **logging)
