"""The app factory: `create_app(workspace_root, settings)`.

At start-up (lifespan) it loads the `champion` of every registered model from the workspace's MLflow registry;
`/health/ready` answers 200 only once they are all loaded (503 while a model failed to load or the registry
cannot be read: the process stays live and says why). The KPI catalogue (`/v1/kpis`, `/kpis`) is mounted.
The lifespan also starts the hot-reload watcher (serving.reload) and the prediction feedback log
(serving.feedback), and at shutdown stops the micro-batchers and flushes the feedback log.

`uvicorn --factory serving.app:create_app` (what `foundation serve --workers N` runs) builds it for the workspace
of `$FOUNDATION_WORKSPACE`, or the one found from the current folder.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from foundation.core.gc_tuning import GC_THRESHOLDS
from foundation.core.settings import FoundationSettings
from foundation.core.workspace import Workspace
from serving.api.routes import dashboards, health, invocations, metrics, models, portfolio, predict
from serving.deps import authenticate, keys_from_environment
from serving.fast_routes import FastScoringRoutes
from serving.feedback import PredictionLog
from serving.loaded_models import load_champions
from serving.metrics import ApiMetrics
from serving.middleware import ApiMiddleware
from serving.model_errors import ModelErrors
from serving.reload import ChampionWatcher, apply_loaded
from serving.schemas import InvalidInput, error_items, malformed_body, validation_detail

log = logging.getLogger("serving")


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        malformed = malformed_body(exc.__cause__) if exc.status_code == 400 and exc.__cause__ else None
        if malformed is not None:  # FastAPI's 400 for a body it could not decode: the one malformed-body 422
            return await invalid_input(request, malformed)
        body = {"detail": exc.detail, "request_id": _request_id(request)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(InvalidInput)
    async def invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "errors": exc.items, "request_id": _request_id(request)}, status_code=422
        )

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = error_items([{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()])
        return JSONResponse(
            {"detail": validation_detail(items), "errors": items, "request_id": _request_id(request)},
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request %s failed: %s", _request_id(request), type(exc).__name__, exc_info=exc)
        return JSONResponse({"detail": "internal server error", "request_id": _request_id(request)}, status_code=500)


def create_app(workspace_root: Path | None = None, settings: FoundationSettings | None = None) -> FastAPI:
    """The inference API for the workspace at `workspace_root` (default: `$FOUNDATION_WORKSPACE` or the one found
    from the current folder), with its settings (default: `foundation.yaml` + environment)."""
    from kpi_catalog.web import catalog_router

    workspace = Workspace.open(workspace_root)
    if settings is not None:
        workspace = Workspace(root=workspace.root, settings=settings)
    settings = workspace.settings
    api_keys = keys_from_environment()  # a malformed FOUNDATION_API_KEYS fails here, at start-up
    api_metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.api.open:
            log.warning("the API is OPEN (api.open: true): no key is asked; only for a demo on localhost")
        elif not api_keys:
            log.warning("no API key configured (FOUNDATION_API_KEYS): every request but /health/* gets 401")
        else:
            log.info("%d API key(s) configured: %s", len(api_keys), ", ".join(k.key_id for k in api_keys))
        try:
            loaded = await run_in_threadpool(load_champions, workspace, settings.api.max_batch_size)
        except Exception as exc:  # the registry cannot be read: live, not ready, and the log says why
            log.error(
                "cannot read the model registry (%s): %s: %s; not ready, retried every %s s",
                settings.mlflow.tracking_uri,
                type(exc).__name__,
                exc,
                settings.api.reload_interval_s or "(never: api.reload_interval_s is 0)",
            )
            app.state.load_errors = {"registry": f"{type(exc).__name__}: {exc}"}
            api_metrics.registry_up.set(0)
            api_metrics.ready.set(0)
        else:
            api_metrics.registry_up.set(1)
            apply_loaded(app.state, api_metrics, loaded.models, loaded.errors)
        # Imports and models leave ~400k long-lived objects that every full GC pass would scan (0.3-0.6 s stalls of
        # all requests in flight under load, bench/serving.py): collect the start-up garbage, then exempt the rest.
        gc.collect()
        gc.freeze()
        # Fewer young-generation passes: each request allocates thousands of short-lived objects (bench/serving.py:
        # p50 15.7 -> 12.7 ms at 32 clients); reference counting still frees them at once.
        thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        # The model calls and the feedback log's writer run in threads: with Python's default 5 ms GIL switch
        # interval the event loop waited up to 5 ms for the GIL each time, which is what p99 is made of.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(settings.api.gil_switch_interval_ms / 1000)
        if settings.api.prediction_log:
            # opening it replays into the lakehouse what a killed process left in the spool (serving.feedback)
            app.state.prediction_log = await run_in_threadpool(
                PredictionLog,
                workspace,
                settings.api.prediction_log_flush_s,
                settings.api.prediction_log_flush_rows,
                settings.api.prediction_log_queue,
                on_written=lambda model, n: api_metrics.prediction_log.labels(model, "written").inc(n),
                on_refused=lambda model, n: api_metrics.prediction_log.labels(model, "refused").inc(n),
            )
        watcher = ChampionWatcher(app.state, workspace, api_metrics, settings.api.reload_interval_s)
        watcher.start()
        try:
            yield
        finally:
            await watcher.stop()
            for batcher in list(app.state.batchers.values()):
                await batcher.close()
            if app.state.prediction_log is not None:
                await run_in_threadpool(app.state.prediction_log.close)
            app.state.models = {}
            app.state.ready = False
            sys.setswitchinterval(switch_interval)
            gc.set_threshold(*thresholds)
            gc.unfreeze()  # what this app held becomes collectable again (tests start many apps in one process)

    app = FastAPI(
        title="Data Foundation inference API",
        description="The champion of every registered model, and the KPI catalogue. "
        "Send a key as `X-API-Key` or `Authorization: Bearer` (see docs/api.md).",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.workspace = workspace
    app.state.api_keys = api_keys
    app.state.metrics = api_metrics
    app.state.models = {}
    app.state.load_errors = {}
    app.state.reload_errors = {}
    app.state.batchers = {}
    app.state.model_errors = ModelErrors(api_metrics.model_errors)
    app.state.prediction_log = None
    app.state.ready = False

    _install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(predict.router)
    app.include_router(invocations.router)
    app.include_router(metrics.router)
    app.include_router(catalog_router(workspace.root), dependencies=[Depends(authenticate)])
    app.include_router(portfolio.router, dependencies=[Depends(authenticate)])
    app.include_router(dashboards.router, dependencies=[Depends(authenticate)])

    # innermost first: the scoring routes are answered before FastAPI, inside ApiMiddleware and CORS
    app.add_middleware(FastScoringRoutes, state=app.state)
    app.add_middleware(ApiMiddleware, metrics=api_metrics, max_body_bytes=settings.api.max_body_bytes)
    if settings.api.cors_origins:
        # outermost, so that ApiMiddleware's own answers (413, 500) carry the CORS headers too: without them a
        # browser hides the status from the page and reports a network error
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    return app
