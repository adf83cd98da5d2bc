"""The app factory: `create_app(workspace_root, settings)`.

At start-up (lifespan) it loads the `champion` of every registered model from the workspace's MLflow registry;
`/health/ready` answers 200 only once they are all loaded (503 while a model failed to load or the registry
cannot be read: the process stays live and says why). The KPI catalogue (`/v1/kpis`, `/kpis`) is mounted.
The lifespan also starts the hot-reload watcher (serving.reload) and the prediction feedback log
(serving.prediction_log), and at shutdown stops the micro-batchers and flushes the feedback log.

`uvicorn --factory serving.app:create_app` (what `foundation serve --workers N` runs) builds it for the workspace
of `$FOUNDATION_WORKSPACE`, or the one found from the current folder.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from foundation.core.gc_tuning import GC_THRESHOLDS
from foundation.core.settings import FoundationSettings
from foundation.core.workspace import Workspace
from serving.api.main import api_router
from serving.auth_session import Sessions, secret_from_environment
from serving.deps import ApiKey, keys_from_environment
from serving.errors import install_error_handlers
from serving.fast_routes import FastScoringRoutes
from serving.loaded_models import load_champions
from serving.lookup import open_lookups
from serving.metrics import ApiMetrics
from serving.middleware import ApiMiddleware
from serving.model_errors import ModelErrors
from serving.openapi import openapi_document
from serving.prediction_log import PredictionLog
from serving.reload import ChampionWatcher, apply_loaded
from serving.shadow import ShadowScoring
from serving.versions import VersionCache

log = logging.getLogger("serving")


def create_app(workspace_root: Path | None = None, settings: FoundationSettings | None = None) -> FastAPI:
    """The inference API for the workspace at `workspace_root` (default: `$FOUNDATION_WORKSPACE` or the one found
    from the current folder), with its settings (default: `foundation.yaml` + environment)."""
    workspace = Workspace.open(workspace_root)
    if settings is not None:
        workspace = Workspace(root=workspace.root, settings=settings)
    api_keys = keys_from_environment()  # a malformed FOUNDATION_API_KEYS fails here, at start-up
    # MLflow draws a progress bar on stderr when it downloads a model's input example: not a JSON log line
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    app = FastAPI(
        title="Data Foundation inference API",
        description="The champion of every registered model, and the KPI catalogue. "
        "Send a key as `X-API-Key` or `Authorization: Bearer` (see docs/api.md).",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served from bundled assets, not a CDN: serving.api.routes.docs
        redoc_url=None,
    )
    init_state(app.state, workspace, api_keys, ApiMetrics())
    secret, app.state.session_secret_set = secret_from_environment()  # a short one fails here, at start-up
    app.state.sessions = Sessions(secret, workspace.settings.api.session_ttl_s)
    app.state.versions = VersionCache(workspace.settings.api.version_cache_size)
    app.state.shadow = None  # the lifespan starts it (serving.shadow)
    install_error_handlers(app)
    app.include_router(api_router(workspace.root))
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]  # per request: follows reloads
    add_middleware(app)
    return app


def init_state(state: Any, workspace: Workspace, api_keys: list[ApiKey], api_metrics: ApiMetrics) -> None:
    """What the routes, the middleware and the lifespan share: settings, keys, metrics, and the served models
    (none until the lifespan loads them)."""
    state.settings = workspace.settings
    state.workspace = workspace
    state.api_keys = api_keys
    state.metrics = api_metrics
    state.models = {}
    state.load_errors = {}
    state.reload_errors = {}
    state.batchers = {}
    state.model_errors = ModelErrors(api_metrics.model_errors)
    state.prediction_log = None
    state.lookups = None  # serving.lookup: the feature indexes of score-by-key
    state.ready = False


def add_middleware(app: FastAPI) -> None:
    settings = app.state.settings
    # innermost first: the scoring routes are answered before FastAPI, inside ApiMiddleware and CORS
    app.add_middleware(FastScoringRoutes, state=app.state)
    app.add_middleware(ApiMiddleware, metrics=app.state.metrics, max_body_bytes=settings.api.max_body_bytes)
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


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start-up: the champions loaded, the runtime tuned, the prediction log opened, the hot reload started;
    shutdown undoes each, last first."""
    state = app.state
    log_key_policy(state.settings, state.api_keys)
    log_session_policy(state)
    await load_models(state)
    restore_runtime = tune_runtime(state.settings.api.gil_switch_interval_ms)
    if state.settings.api.prediction_log:
        state.prediction_log = await run_in_threadpool(open_prediction_log, state)
    watcher = ChampionWatcher(state, state.workspace, state.metrics, state.settings.api.reload_interval_s)
    watcher.start()
    state.lookups = await open_lookups(state)
    state.shadow = start_shadow(state)
    try:
        yield
    finally:
        await state.lookups.stop()
        await watcher.stop()
        if state.shadow is not None:
            await state.shadow.stop()
        await close(state)
        restore_runtime()


def log_key_policy(settings: FoundationSettings, api_keys: list[ApiKey]) -> None:
    if settings.api.open:
        log.warning("the API is OPEN (api.open: true): no key is asked; only for a demo on localhost")
    elif not api_keys:
        log.warning("no API key configured (FOUNDATION_API_KEYS): every request but /health/* gets 401")
    else:
        log.info("%d API key(s) configured: %s", len(api_keys), ", ".join(k.key_id for k in api_keys))


def log_session_policy(state: Any) -> None:
    if not state.settings.api.open and not state.session_secret_set:
        log.info(
            "browser sessions signed with a secret generated by this process: they end when it restarts and other "
            "worker processes refuse them (set FOUNDATION_SESSION_SECRET to share one)"
        )


async def load_models(state: Any) -> None:
    """The champions into `state`; when the registry cannot be read: live, not ready, and the log says why."""
    settings, api_metrics = state.settings, state.metrics
    try:
        loaded = await run_in_threadpool(load_champions, state.workspace, settings.api.max_batch_size)
    except Exception as exc:
        log.error(
            "cannot read the model registry (%s): %s: %s; not ready, retried every %s s",
            settings.mlflow.tracking_uri,
            type(exc).__name__,
            exc,
            settings.api.reload_interval_s or "(never: api.reload_interval_s is 0)",
        )
        state.load_errors = {"registry": f"{type(exc).__name__}: {exc}"}
        api_metrics.registry_up.set(0)
        api_metrics.ready.set(0)
        return
    api_metrics.registry_up.set(1)
    apply_loaded(state, api_metrics, loaded.models, loaded.errors)


def start_shadow(state: Any) -> ShadowScoring | None:
    """The challengers' shadow scoring (serving.shadow), unless `api.shadow_share` is 0."""
    api = state.settings.api
    if api.shadow_share <= 0:
        return None
    shadow = ShadowScoring(
        state.workspace, api.shadow_share, api.shadow_queue, api.prediction_log_flush_s, api.max_batch_size
    )
    shadow.start(api.reload_interval_s)
    return shadow


def tune_runtime(gil_switch_interval_ms: float) -> Callable[[], None]:
    """The garbage collector and the GIL tuned for serving; returns what puts them back."""
    # Imports and models leave ~400k long-lived objects that every full GC pass would scan (0.3-0.6 s stalls of
    # all requests in flight under load, bench/serving.py): collect the start-up garbage, then exempt the rest.
    gc.collect()
    gc.freeze()
    # Fewer young-generation passes: each request allocates thousands of short-lived objects (bench/serving.py:
    # p50 15.7 -> 12.7 ms at 32 clients); reference counting still frees them at once.
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    # The model calls and the prediction log's writer run in threads: with Python's default 5 ms GIL switch
    # interval the event loop waited up to 5 ms for the GIL each time, which is what p99 is made of.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(gil_switch_interval_ms / 1000)

    def restore() -> None:
        sys.setswitchinterval(switch_interval)
        gc.set_threshold(*thresholds)
        gc.unfreeze()  # what this app held becomes collectable again (tests start many apps in one process)

    return restore


def open_prediction_log(state: Any) -> PredictionLog:
    """Opening it replays into the lakehouse what a killed process left in the spool (serving.prediction_log)."""
    api, api_metrics = state.settings.api, state.metrics
    return PredictionLog(
        state.workspace,
        api.prediction_log_flush_s,
        api.prediction_log_flush_rows,
        api.prediction_log_queue,
        on_written=lambda model, n: api_metrics.prediction_log.labels(model, "written").inc(n),
        on_refused=lambda model, n: api_metrics.prediction_log.labels(model, "refused").inc(n),
    )


async def close(state: Any) -> None:
    """The micro-batchers stopped, the prediction log flushed, the models let go."""
    for batcher in list(state.batchers.values()):
        await batcher.close()
    if state.prediction_log is not None:
        await run_in_threadpool(state.prediction_log.close)
    state.models = {}
    state.ready = False
