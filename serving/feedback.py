"""The prediction feedback log: every prediction the API answers, appended to the lakehouse in the background.

The request path only appends a reference to a bounded in-memory buffer (never blocks, never writes); a writer
thread turns the buffer into Arrow and appends it to one Delta table per model every `prediction_log_flush_s`
seconds or `prediction_log_flush_rows` rows, and once more at shutdown. When the buffer is full, predictions are
dropped, counted (`foundation_api_prediction_log_dropped_total`) and logged: the API never slows down for it.

Table: `<lakehouse>/ml/<usecase>/<model>/api_predictions` for a registered model `<usecase>__<model>` (next to the
batch `predictions`), `<lakehouse>/ml/_api/<name>/api_predictions` otherwise. Columns: prediction_id,
request_id, model, model_version, predicted_at (UTC), inputs (JSON object of the row), prediction (JSON), score,
key_id (the key's hash id, never the key). Monitoring joins it with ground truth on the inputs' entity and time
(`json_extract_string(inputs, '$.truck_id')`) or on `prediction_id` where the client sends it back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from foundation.workspace import Workspace

log = logging.getLogger("serving.feedback")

FEEDBACK_SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("request_id", pa.string()),
        ("model", pa.string()),
        ("model_version", pa.int64()),
        ("predicted_at", pa.timestamp("us", "UTC")),
        ("inputs", pa.string()),
        ("prediction", pa.string()),
        ("score", pa.float64()),
        ("key_id", pa.string()),
    ]
)


def feedback_uri(workspace: Workspace, model: str) -> str:
    usecase, sep, name = model.partition("__")
    folder = f"{usecase}/{name}" if sep and usecase and name else f"_api/{model}"
    return f"{workspace.lakehouse_root.rstrip('/')}/ml/{folder}/api_predictions"


@dataclass(frozen=True)
class Served:
    """One answered request: what the writer turns into rows (kept as references: no work on the request path)."""

    model: str
    version: int
    request_id: str
    key_id: str | None
    at: float
    rows: list[dict[str, Any]]
    predictions: list[dict[str, Any]]


def feedback_table(items: list[Served]) -> pa.Table:
    """Pure: the rows to append for some answered requests (one per prediction)."""
    columns: dict[str, list[Any]] = {name: [] for name in FEEDBACK_SCHEMA.names}
    for item in items:
        at = datetime.fromtimestamp(item.at, UTC)
        for row, prediction in zip(item.rows, item.predictions, strict=True):
            columns["prediction_id"].append(prediction["prediction_id"])
            columns["request_id"].append(item.request_id)
            columns["model"].append(item.model)
            columns["model_version"].append(item.version)
            columns["predicted_at"].append(at)
            columns["inputs"].append(_json(row))
            columns["prediction"].append(_json(prediction["prediction"]))
            columns["score"].append(prediction.get("score"))
            columns["key_id"].append(item.key_id)
    return pa.table(columns, schema=FEEDBACK_SCHEMA)


def _json(value: Any) -> str:
    """Strict JSON (NaN and infinities as null, dates as ISO 8601 text), so DuckDB's json functions read every row.

    orjson: it runs for every logged prediction, and json.dumps made the log cost as much CPU as scoring a
    1,000-row request (bench/serving.py). What orjson refuses (an int beyond 64 bits) goes through json.dumps."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except orjson.JSONEncodeError:
        return json.dumps(_finite(value), default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return None if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))) else value


class PredictionLog:
    """Bounded buffer + one writer thread. `record` is cheap and never blocks; `close` flushes what is left."""

    def __init__(
        self,
        workspace: Workspace,
        flush_s: float,
        flush_rows: int,
        capacity: int,
        on_written: Any = None,  # callable(model, rows)
        on_dropped: Any = None,  # callable(model, rows)
    ) -> None:
        self.workspace = workspace
        self.flush_s = flush_s
        self.flush_rows = flush_rows
        self.capacity = capacity
        self.on_written = on_written
        self.on_dropped = on_dropped
        self.written = 0
        self.dropped = 0
        self._buffer: deque[Served] = deque()
        self._pending = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._last_drop_log = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def record(self, item: Served) -> None:
        n = len(item.predictions)
        with self._lock:
            if self._pending + n > self.capacity or self._stop:
                self.dropped += n
                dropped = True
            else:
                self._buffer.append(item)
                self._pending += n
                dropped = False
                if self._pending >= self.flush_rows:
                    self._wake.set()
        if dropped:
            if self.on_dropped is not None:
                self.on_dropped(item.model, n)
            now = time.monotonic()
            if now - self._last_drop_log > 10:  # at most one line per 10 s: a full buffer must not flood the log
                self._last_drop_log = now
                log.warning(
                    "prediction log buffer full (%d rows, api.prediction_log_queue): %d prediction(s) dropped so far",
                    self.capacity,
                    self.dropped,
                )

    def flush(self) -> int:
        """Write what is buffered now (the writer thread calls it; tests may too). Returns the rows written."""
        with self._lock:
            items = list(self._buffer)
            self._buffer.clear()
            self._pending = 0
        if not items:
            return 0
        from deltalake import write_deltalake

        by_model: dict[str, list[Served]] = {}
        for item in items:
            by_model.setdefault(item.model, []).append(item)
        total = 0
        for model, served in by_model.items():
            table = feedback_table(served)
            try:
                write_deltalake(
                    feedback_uri(self.workspace, model),
                    table,
                    mode="append",
                    storage_options=self.workspace.settings.lakehouse.storage_options or None,
                )
            except Exception as exc:  # the lakehouse is unreachable: count and say so, keep serving
                self.dropped += table.num_rows
                if self.on_dropped is not None:
                    self.on_dropped(model, table.num_rows)
                log.error(
                    "cannot append %d prediction(s) of %s to %s: %s: %s",
                    table.num_rows,
                    model,
                    feedback_uri(self.workspace, model),
                    type(exc).__name__,
                    exc,
                )
                continue
            total += table.num_rows
            if self.on_written is not None:
                self.on_written(model, table.num_rows)
        self.written += total
        return total

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the writer die silently
                log.exception("prediction log flush failed")

    def close(self, timeout: float = 60.0) -> None:
        """Stop the writer and flush the rest (called at shutdown)."""
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        self.flush()
        log.info("prediction log closed: %d written, %d dropped", self.written, self.dropped)
