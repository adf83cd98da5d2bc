"""Shadow scoring: the `challenger` of a model scored on a share of the champion's requests, never returned.

When a registered model has a `challenger` alias (`foundation models challenger NAME VERSION`), a share
(`api.shadow_share`) of the requests its champion answers are handed, after the champion's answer is made, to a
background task of this module: it scores them with the challenger in a worker thread (several requests in one
model call) and appends each challenger prediction beside the champion's to the Delta table
`<lakehouse>/ml/<usecase>/<model>/shadow_predictions` (next to `api_predictions`), keyed by the champion's
`prediction_id`. The answer never waits for it: handing over is a random draw and an append to a bounded queue
(`api.shadow_queue` requests; beyond, requests are not shadowed and counted as dropped). Shadow rows are best
effort: a process killed before its next write (every `api.prediction_log_flush_s`) loses them; the answers and
the prediction log do not depend on them. The challengers are found by polling the registry every
`api.reload_interval_s`, like the champions (serving.reload). The use-case dashboard compares the two
(serving.shadow_report).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake
from starlette.concurrency import run_in_threadpool

from foundation.core.workspace import Workspace
from mlops.registry import CHALLENGER, CHAMPION, alias_versions, mlflow_client
from serving.loaded_models import ServedModel, load_version
from serving.prediction_log import _json, feedback_uri

log = logging.getLogger("serving.shadow")

SHADOW_SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),  # the champion's: joins api_predictions
        ("request_id", pa.string()),
        ("model", pa.string()),
        ("champion_version", pa.int64()),
        ("challenger_version", pa.int64()),
        ("predicted_at", pa.timestamp("us", "UTC")),
        ("inputs", pa.string()),
        ("champion_prediction", pa.string()),
        ("champion_score", pa.float64()),
        ("challenger_prediction", pa.string()),
        ("challenger_score", pa.float64()),
    ]
)
SCORE_AT_MOST = 64  # requests scored in one challenger call


def shadow_uri(workspace: Workspace, model: str) -> str:
    return feedback_uri(workspace, model).rsplit("/", 1)[0] + "/shadow_predictions"


@dataclass(frozen=True)
class ShadowJob:
    challenger: ServedModel
    champion_version: int
    request_id: str
    at: float
    rows: list[dict[str, Any]]
    predictions: list[dict[str, Any]]  # the champion's


def shadow_rows(job: ShadowJob, challenger_predictions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pure: one row of the shadow table per instance: both answers side by side."""
    at = round(job.at * 1_000_000)
    return [
        {
            "prediction_id": champion["prediction_id"],
            "request_id": job.request_id,
            "model": job.challenger.name,
            "champion_version": job.champion_version,
            "challenger_version": job.challenger.version,
            "predicted_at": at,
            "inputs": _json(row),
            "champion_prediction": _json(champion["prediction"]),
            "champion_score": champion.get("score"),
            "challenger_prediction": _json(challenger["prediction"]),
            "challenger_score": challenger.get("score"),
        }
        for row, champion, challenger in zip(job.rows, job.predictions, challenger_predictions, strict=True)
    ]


def shadow_table(rows: list[dict[str, Any]]) -> pa.Table:
    columns = {name: [row[name] for row in rows] for name in SHADOW_SCHEMA.names}
    arrays = [
        pa.array(columns[f.name], pa.int64()).cast(f.type)
        if f.name == "predicted_at"
        else pa.array(columns[f.name], f.type)
        for f in SHADOW_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=SHADOW_SCHEMA)


class ShadowScoring:
    """The challengers, the queue of requests to shadow, and the task that scores and writes them."""

    def __init__(
        self,
        workspace: Workspace,
        share: float,
        queue_max: int,
        flush_s: float,
        max_batch_size: int,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.workspace = workspace
        self.share = share
        self.queue_max = queue_max
        self.flush_s = flush_s
        self.max_batch_size = max_batch_size
        self.draw = draw
        self.challengers: dict[str, ServedModel] = {}
        self.offered = self.dropped = self.scored = self.failed = self.written = 0
        self._queue: deque[ShadowJob] = deque()
        self._rows: dict[str, list[dict[str, Any]]] = {}  # model -> shadow rows not yet written
        self._rows_lock = threading.Lock()  # scoring and writing run in worker threads
        self._wake = asyncio.Event()
        self._stopping = False
        self._scorer: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None

    # -- the request path: O(1), never waits --------------------------------------------------------------------
    def offer(
        self, champion: ServedModel, rows: list[dict[str, Any]], predictions: list[dict[str, Any]], request_id: str
    ) -> bool:
        """Hand an answered champion request over for shadow scoring (when drawn); whether it was taken."""
        challenger = self.challengers.get(champion.name)
        if challenger is None or champion.alias != CHAMPION or self.draw() >= self.share:
            return False
        if len(self._queue) >= self.queue_max:
            self.dropped += 1
            return False
        self.offered += 1
        self._queue.append(ShadowJob(challenger, champion.version, request_id, time.time(), rows, predictions))
        self._wake.set()
        return True

    # -- background ---------------------------------------------------------------------------------------------
    def start(self, poll_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._scorer = loop.create_task(self._score_loop(), name="shadow-scoring")
        self._poller = loop.create_task(self._poll_loop(poll_s), name="shadow-challengers")

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Score what is queued, write everything, stop (the scorer finishes its batch: no row is cut off)."""
        self._stopping = True
        self._wake.set()
        for task, wait in ((self._poller, False), (self._scorer, True)):
            if task is None:
                continue
            if not wait:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout_s)
        self._poller = self._scorer = None
        await self.score_queued()
        await run_in_threadpool(self.flush)

    async def _poll_loop(self, poll_s: float) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the registry unreachable: keep the challengers we have
                log.warning("shadow: cannot read the challengers: %s: %s", type(exc).__name__, exc)
            if poll_s <= 0:
                return
            await asyncio.sleep(poll_s)

    async def refresh(self) -> None:
        """Load the challengers whose alias moved; forget those whose alias is gone."""
        client = await run_in_threadpool(mlflow_client, self.workspace)
        wanted = await run_in_threadpool(alias_versions, client, CHALLENGER)
        current = dict(self.challengers)
        for name in [n for n in current if n not in wanted]:
            log.info("shadow: %s has no challenger any more", name)
            del current[name]
        for name, version in sorted(wanted.items()):
            if name in current and current[name].version == version:
                continue
            try:
                found = await run_in_threadpool(client.get_model_version, name, str(version))
                loaded = await run_in_threadpool(
                    load_version, self.workspace, client, name, found, self.max_batch_size, CHALLENGER
                )
            except Exception as exc:
                log.error("shadow: cannot load %s v%s: %s: %s", name, version, type(exc).__name__, exc)
                continue
            current[name] = loaded
            log.info("shadow: %s v%s scored in shadow on %.0f%% of requests", name, version, self.share * 100)
        self.challengers = current

    async def _score_loop(self) -> None:
        last_flush = time.monotonic()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            await self.score_queued()
            if time.monotonic() - last_flush >= self.flush_s and not self._stopping:
                last_flush = time.monotonic()
                try:
                    await run_in_threadpool(self.flush)
                except Exception:
                    log.exception("shadow: writing the shadow predictions failed (kept for the next write)")

    async def score_queued(self) -> None:
        while self._queue:
            jobs = [self._queue.popleft() for _ in range(min(SCORE_AT_MOST, len(self._queue)))]
            by_model: dict[int, list[ShadowJob]] = {}
            for job in jobs:
                by_model.setdefault(id(job.challenger), []).append(job)
            for group in by_model.values():
                await run_in_threadpool(self._score, group)

    def _score(self, jobs: list[ShadowJob]) -> None:
        challenger = jobs[0].challenger
        rows = [row for job in jobs for row in job.rows]
        try:
            _, predictions = challenger.predict(rows)
        except Exception as exc:
            self.failed += len(jobs)
            log.warning("shadow: %s v%s failed to score: %s", challenger.name, challenger.version, type(exc).__name__)
            return
        made, start = [], 0
        for job in jobs:
            end = start + len(job.rows)
            made += shadow_rows(job, predictions[start:end])
            start = end
        with self._rows_lock:
            self._rows.setdefault(challenger.name, []).extend(made)
        self.scored += len(jobs)

    def flush(self) -> int:
        """Append the buffered shadow rows to each model's table (a failed model keeps its rows for the next try)."""
        with self._rows_lock:
            pending, self._rows = self._rows, {}
        written = 0
        storage = self.workspace.settings.lakehouse.storage_options or None
        for model, rows in pending.items():
            try:
                write_deltalake(
                    shadow_uri(self.workspace, model), shadow_table(rows), mode="append", storage_options=storage
                )
            except Exception as exc:
                with self._rows_lock:
                    self._rows.setdefault(model, []).extend(rows)
                log.error("shadow: cannot append to the shadow table of %s: %s: %s", model, type(exc).__name__, exc)
                continue
            written += len(rows)
        self.written += written
        return written
