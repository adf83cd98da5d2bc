"""The scoring path shared by `/predict` and `/invocations`: validate, score (gathered or alone), count, log.

Small requests (fewer rows than `api.batch_max_rows`) are validated in the event loop and handed to the model's
micro-batcher; big ones are validated and scored in a worker thread, as one model call. Either way the answer
names the version that scored it, and every prediction goes to the feedback log (when on).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from serving.batching import MicroBatcher, Scored
from serving.feedback import Served
from serving.models import ServedModel

Rows = list[dict[str, Any]]


def batcher_for(state: Any, name: str) -> MicroBatcher:
    batchers: dict[str, MicroBatcher] = state.batchers
    batcher = batchers.get(name)
    if batcher is None:
        api = state.settings.api
        observe = state.metrics.batch_rows
        batcher = MicroBatcher(
            name,
            api.batch_max_wait_ms / 1000,
            api.batch_max_rows,
            on_batch=lambda model, rows: observe.labels(model).observe(rows),
        )
        batchers[name] = batcher
    return batcher


async def score(request: Request, model: ServedModel, rows_of: Callable[[], Rows], size: int) -> Scored:
    """Score the rows `rows_of()` validates (it raises InvalidInput for a 422); `size` is the row count claimed by
    the body, to choose the path before validating."""
    state = request.app.state
    api = state.settings.api
    if api.batching and size < api.batch_max_rows:
        batcher = batcher_for(state, model.name)
        batcher.expect()
        try:
            rows = rows_of()
        finally:
            batcher.unexpect()
        raw, predictions = await batcher.submit(model, rows)
    else:

        def alone() -> tuple[Rows, Scored]:
            checked = rows_of()
            return checked, model.predict(checked)

        rows, (raw, predictions) = await run_in_threadpool(alone)
    request.state.model_version = model.version
    state.metrics.count_predictions(model.name, model.version, [p["prediction"] for p in predictions])
    feedback = state.prediction_log
    if feedback is not None:
        feedback.record(
            Served(
                model.name,
                model.version,
                getattr(request.state, "request_id", ""),
                getattr(request.state, "key_id", None),
                time.time(),
                rows,
                predictions,
            )
        )
    return raw, predictions


def claimed_rows(value: Any) -> int:
    """How many rows a body part claims (a list's length; 1 for anything else)."""
    return len(value) if isinstance(value, list) else 1
