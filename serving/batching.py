"""Adaptive micro-batching: concurrent small requests for one model are scored in one model call.

A model call costs about the same for 1 row as for a hundred, so under concurrency the API gathers requests
(BentoML's adaptive batching is the anchor): one dispatcher task per model takes the first waiting request, then
keeps gathering for at most `batch_max_wait_ms` — but only while more requests are on their way (a request that
has entered a predict route and not yet been queued), so a lone client never waits — or until `batch_max_rows`.
While a batch is being scored (in a worker thread), the next requests queue up: the busier the API, the bigger
the batches. Each caller gets its own slice of the output.

If the gathered call fails, the batch is bisected, level by level: each half is scored together, a half that
succeeds is answered at once, a half that fails is split again, until the failing request is alone and gets the
error. With one failing request among n, half of the others are answered after one more call, a quarter after two,
and the whole costs 2*log2(n) calls of shrinking size (before: every request was scored alone, n calls, and a
client sending `Infinity` made nearly every batch fail).

A request refused at validation (422) is answered no sooner than a valid one typically is at the time (`refuse`:
a moving average of the valid requests' answer time; the wait costs no CPU), and a connection refused again and
again waits twice as long each time, up to REFUSAL_WAIT_MAX_S (its next valid answer resets it). Answered at once,
a client sending what cannot be scored gets its next request in before the valid ones and, closed-loop, takes the
CPU that scores them (bench/serving.py --hostile: 8 such clients left 24 normal ones 48-59% of their throughput;
paced like valid answers, 55-95%; with the doubling, see docs/benchmarks.md).

Requests carry the `ServedModel` they started with: after a hot reload, requests already queued are still scored
by the version they were validated against (a batch never mixes versions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NoReturn

from serving.loaded_models import ServedModel

log = logging.getLogger("serving.batching")

Scored = tuple[list[Any], list[dict[str, Any]]]  # (raw output rows, predictions)
ANSWER_TIME_WEIGHT = 0.1  # of the latest valid answer in the moving average
REFUSAL_WAIT_MAX_S = 1.0  # a refusal waits at most this long, whatever the model's answer time
REFUSING_CONNECTIONS_MAX = 10_000  # connections whose refusals in a row are remembered


@dataclass
class _Job:
    model: ServedModel
    rows: list[dict[str, Any]]
    future: asyncio.Future[Scored]


def score_together(model: ServedModel, rows_per_job: list[list[dict[str, Any]]]) -> list[Scored] | Exception:
    """Score several requests' rows in one model call and split the output back, in order (runs in a thread);
    the exception when the model raises."""
    rows = [row for job_rows in rows_per_job for row in job_rows]
    try:
        raw, predictions = model.predict(rows)
    except Exception as exc:
        return exc
    results = []
    start = 0
    for job_rows in rows_per_job:
        end = start + len(job_rows)
        results.append((raw[start:end], predictions[start:end]))
        start = end
    return results


@dataclass
class MicroBatcher:
    """The dispatcher of one model name. `submit` is called from the event loop."""

    name: str
    max_wait_s: float
    max_rows: int
    on_batch: Any = None  # callable(model_name, rows): observed batch sizes (metrics)
    calls: int = 0  # model calls made (what the tests count)
    answer_s: float = 0.0  # moving average of the valid requests' answer time (refusals wait as long)
    _refused: dict[Any, int] = field(default_factory=dict)  # connection -> refusals in a row
    requests: int = 0
    arriving: int = 0  # requests inside a predict route, not queued yet: worth waiting for
    _queue: asyncio.Queue[_Job] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None

    def expect(self) -> None:
        """A request for this model has arrived (called before validation)."""
        self.arriving += 1

    def unexpect(self) -> None:
        self.arriving = max(0, self.arriving - 1)

    async def submit(self, model: ServedModel, rows: list[dict[str, Any]]) -> Scored:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=f"batcher:{self.name}")
        future: asyncio.Future[Scored] = loop.create_future()
        self.requests += 1
        self._queue.put_nowait(_Job(model, rows, future))
        return await future

    def answered(self, seconds: float, connection: Any = None) -> None:
        """A valid request of this model was answered `seconds` after it reached the scoring path."""
        self.answer_s += ANSWER_TIME_WEIGHT * (seconds - self.answer_s)
        self._refused.pop(connection, None)

    def refusal_wait(self, elapsed_s: float, connection: Any = None) -> float:
        """How long a refusal reached `elapsed_s` after its request's arrival still waits (see the module); counts
        the connection's refusal."""
        times = self._refused.pop(connection, 0) + 1 if connection is not None else 1
        if connection is not None:
            if len(self._refused) >= REFUSING_CONNECTIONS_MAX:
                self._refused.pop(next(iter(self._refused)))
            self._refused[connection] = times  # re-inserted: the oldest entry is the least recently refused
        wait = self.answer_s * 2 ** min(times - 1, 30)
        return max(0.0, min(wait, REFUSAL_WAIT_MAX_S) - elapsed_s)

    async def refuse(self, refusal: Exception, elapsed_s: float, connection: Any = None) -> NoReturn:
        """Raise `refusal`, no sooner than a valid request is typically answered (see the module)."""
        wait = self.refusal_wait(elapsed_s, connection)
        if wait > 0:
            await asyncio.sleep(wait)
        raise refusal

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _gather(self) -> list[_Job]:
        jobs = [await self._queue.get()]
        rows = len(jobs[0].rows)
        deadline = time.perf_counter() + self.max_wait_s
        while rows < self.max_rows:
            if self._queue.empty():
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self.arriving == 0:  # nobody else on the way: do not make this one wait
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                job = self._queue.get_nowait()
            jobs.append(job)
            rows += len(job.rows)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather()
            # a batch never mixes model versions (a hot reload may land between two requests)
            groups: dict[int, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(id(job.model), []).append(job)
            for group in groups.values():
                live = [j for j in group if not j.future.cancelled()]  # a client that went away
                if live:
                    await self._score(loop, live)

    async def _score(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        """Score the jobs together; bisect a part that fails until the failing jobs are alone (see the module)."""
        parts = deque([jobs])  # first in, first out: a level's halves before their own halves
        while parts:
            part = parts.popleft()
            self.calls += 1
            if self.on_batch is not None:
                self.on_batch(self.name, sum(len(j.rows) for j in part))
            try:
                results = await loop.run_in_executor(None, score_together, part[0].model, [j.rows for j in part])
            except BaseException as exc:  # cancelled while scoring: answer, then stop
                for job in [job for waiting in (part, *parts) for job in waiting]:
                    if not job.future.done():
                        job.future.set_exception(RuntimeError(f"batcher stopped: {type(exc).__name__}"))
                raise
            if isinstance(results, Exception):
                if len(part) == 1:
                    if not part[0].future.done():
                        part[0].future.set_exception(results)
                else:
                    middle = len(part) // 2
                    parts += [part[:middle], part[middle:]]
                continue
            for job, result in zip(part, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
