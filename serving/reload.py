"""Hot reload: a background task polls the registry and swaps in a champion when its alias moves.

Every `api.reload_interval_s` seconds one registry search reads where each model's `champion` alias points
(`mlops.registry.champion_versions`). When it moved (promote or rollback), or a model got its first champion, or a
model failed to load earlier, the new version is loaded in a worker thread — off the request path — and swapped in
with one assignment of the models mapping. A request holds the `ServedModel` it started with, so requests in
flight finish on their version. If loading fails or the registry cannot be read, the old version keeps serving;
the log says why, `/health/ready` shows it under `reload_errors`, and `foundation_api_reloads_total{outcome=
"failure"}` / `foundation_api_registry_up` count it. A registry unreachable at start-up is retried the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool

from foundation.core.workspace import Workspace
from mlops.registry import champion_versions, mlflow_client
from serving.loaded_models import load_champion, load_champions
from serving.metrics import ApiMetrics

log = logging.getLogger("serving.reload")


def apply_loaded(state: Any, metrics: ApiMetrics, models: dict[str, Any], errors: dict[str, str]) -> None:
    """Start-up (or retried) load result into the app state."""
    state.models = models
    state.load_errors = errors
    state.ready = not errors
    for name, model in models.items():
        metrics.model_version.labels(name).set(model.version)
    metrics.ready.set(1 if state.ready else 0)


class ChampionWatcher:
    def __init__(self, state: Any, workspace: Workspace, metrics: ApiMetrics, interval_s: float) -> None:
        self.state = state
        self.workspace = workspace
        self.metrics = metrics
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._reported: dict[str, str] = {}  # last error logged per model: log a failure once, not every poll

    def start(self) -> None:
        if self.interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="champion-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # the watcher must outlive any surprise
                log.exception("hot reload check failed")

    def _fail(self, key: str, message: str) -> None:
        self.state.reload_errors[key] = message
        if self._reported.get(key) != message:
            self._reported[key] = message
            log.error("hot reload: %s: %s; still serving %s", key, message, self._serving(key))

    def _serving(self, name: str) -> str:
        if name == "registry":
            served = ", ".join(f"{n} version {m.version}" for n, m in sorted(self.state.models.items()))
            return served or "nothing (no model loaded yet)"
        model = self.state.models.get(name)
        return f"version {model.version}" if model is not None else "nothing for it"

    def _clear(self, key: str) -> None:
        self.state.reload_errors.pop(key, None)
        self._reported.pop(key, None)

    async def check(self) -> None:
        """One poll: load what moved, swap it in. Never raises for registry or load failures."""
        state = self.state
        max_rows = state.settings.api.max_batch_size
        if "registry" in state.load_errors:  # unreachable at start-up: try the whole load again
            try:
                loaded = await run_in_threadpool(load_champions, self.workspace, max_rows)
            except Exception as exc:
                self.metrics.registry_up.set(0)
                self._fail("registry", f"cannot read the model registry: {type(exc).__name__}: {exc}")
                return
            self.metrics.registry_up.set(1)
            self._clear("registry")
            apply_loaded(state, self.metrics, loaded.models, loaded.errors)
            log.info("registry reachable again: serving %s", {n: m.version for n, m in loaded.models.items()})
            return
        try:
            client = mlflow_client(self.workspace)
            versions = await run_in_threadpool(champion_versions, client)
        except Exception as exc:
            self.metrics.registry_up.set(0)
            self._fail("registry", f"cannot read the model registry: {type(exc).__name__}: {exc}")
            return
        self.metrics.registry_up.set(1)
        self._clear("registry")
        for name, version in sorted(versions.items()):
            served = state.models.get(name)
            if version is None:
                if served is not None and self._reported.get(name) != "no champion":
                    self._reported[name] = "no champion"
                    log.warning("%s lost its champion alias: still serving version %s", name, served.version)
                continue
            if served is not None and served.version == version and name not in state.load_errors:
                self._clear(name)
                continue
            await self._reload(client, name, version, served)

    async def _reload(self, client: Any, name: str, version: int, served: Any) -> None:
        state = self.state
        try:
            fresh = await run_in_threadpool(
                load_champion, self.workspace, client, name, state.settings.api.max_batch_size
            )
            if fresh is None:
                raise LookupError("the champion alias disappeared while loading")
        except Exception as exc:
            self.metrics.reloads.labels(name, "failure").inc()
            self._fail(name, f"cannot load version {version}: {type(exc).__name__}: {exc}")
            return
        # the swap: one assignment; requests that already hold the old ServedModel finish on it
        state.models = {**state.models, name: fresh}
        state.load_errors = {k: v for k, v in state.load_errors.items() if k != name}
        state.ready = not state.load_errors
        self.metrics.ready.set(1 if state.ready else 0)
        self.metrics.model_version.labels(name).set(fresh.version)
        self.metrics.reloads.labels(name, "success").inc()
        self._clear(name)
        before = f"version {served.version}" if served is not None else "nothing"
        log.info("hot reload: %s now serves version %s (was %s)", name, fresh.version, before, extra={"model": name})
