"""Registry versions served on demand: `POST /v1/models/{name}/versions/{v}/predict` scores with version `v`.

The champion's version is the champion already loaded. Any other version is loaded from the registry on its first
request (in a worker thread, off the event loop; concurrent first requests share one load) and kept in a bounded
cache, least recently used out first (`api.version_cache_size`), so that a client pinned to an old version costs
one load, not one per request. A version the registry does not have is a 404 naming the versions it has.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from mlops.registry import mlflow_client
from serving.loaded_models import ServedModel, load_version

log = logging.getLogger("serving.versions")

MAX_VERSION = 2**31 - 1  # MLflow's version numbers are positive integers; beyond this none can exist


def registry_version(workspace: Any, name: str, version: int) -> tuple[Any, Any] | None:
    """(the MLflow client, the ModelVersion) or None when the registry has no such version (runs in a thread)."""
    from mlflow.exceptions import MlflowException  # lazy: mlflow, as in serving.loaded_models

    client = mlflow_client(workspace)
    try:
        return client, client.get_model_version(name, str(version))
    except MlflowException:
        return None


def known_versions(workspace: Any, name: str) -> list[int]:
    client = mlflow_client(workspace)
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))


class VersionCache:
    """Loaded versions by (model, version), at most `size` of them; one load at a time per version."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.loads = 0  # registry loads made (what the tests count)
        self._models: OrderedDict[tuple[str, int], ServedModel] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Future[ServedModel]] = {}

    async def get(self, state: Any, champion: ServedModel, version: int) -> ServedModel:
        """Version `version` of the served model `champion` (itself when it is that version); 404 when unknown."""
        if version == champion.version:
            return champion
        key = (champion.name, version)
        cached = self._models.get(key)
        if cached is not None:
            self._models.move_to_end(key)
            return cached
        waiting = self._loading.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[ServedModel] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            loaded = await self._load(state, champion.name, version)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._loading.pop(key, None)
        future.set_result(loaded)
        self._models[key] = loaded
        while len(self._models) > self.size:
            (old_name, old_version), _ = self._models.popitem(last=False)
            log.info("version cache: %s v%s let go (api.version_cache_size %d)", old_name, old_version, self.size)
        return loaded

    async def _load(self, state: Any, name: str, version: int) -> ServedModel:
        workspace = state.workspace
        found = await run_in_threadpool(registry_version, workspace, name, version) if version <= MAX_VERSION else None
        if found is None:
            versions = await run_in_threadpool(known_versions, workspace, name)
            raise HTTPException(
                404, f"{name} has no version {version}; versions: {', '.join(map(str, versions)) or 'none'}"
            )
        client, model_version = found
        max_rows = state.settings.api.max_batch_size
        loaded = await run_in_threadpool(load_version, workspace, client, name, model_version, max_rows, "version")
        self.loads += 1
        log.info("version cache: %s v%s loaded on demand", name, version)
        return loaded
