"""The prediction feedback log: every prediction the API answers, appended to the lakehouse in the background.

The request path turns its rows into the log's values (JSON text: a few microseconds a row) and appends them to a
bounded in-memory buffer (never blocks, never writes); a writer thread turns the buffer into Arrow and appends it to
one Delta table per model every `prediction_log_flush_s` seconds or `prediction_log_flush_rows` rows, and once more
at shutdown. The JSON is made on the request path on purpose: made by the writer, 5,000 rows at a time, it held
the GIL in bursts of 10-25 ms that every request in flight waited through (bench/serving.py: p99), and the
buffered row dicts kept the garbage collector busy; strings are not tracked by it. When the buffer is full,
predictions are dropped, counted (`foundation_api_prediction_log_dropped_total`) and logged: the API never
slows down for it.

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
from typing import Any

import orjson
import pyarrow as pa

from foundation.workspace import Workspace

log = logging.getLogger("serving.feedback")

# Requests turned into Arrow at a time by the writer: pyarrow's conversion of a Python list holds the GIL for its
# whole loop (12,000 rows in one go: a 25 ms stall of every request in flight), a small chunk for well under 1 ms.
ARROW_CHUNK_ITEMS = 128

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
    """One answered request, as the scoring path hands it over."""

    model: str
    version: int
    request_id: str
    key_id: str | None
    at: float
    rows: list[dict[str, Any]]
    predictions: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LoggedRows:
    """One answered request, ready for the table: its rows' values, JSON already made (see the module's doc)."""

    model: str
    version: int
    request_id: str
    key_id: str | None
    at: float
    prediction_ids: list[str]
    inputs: list[str]
    predictions: list[str]
    scores: list[float | None]


def prepare(item: Served) -> LoggedRows:
    """Pure: the log's values of an answered request (one per prediction)."""
    if len(item.rows) != len(item.predictions):
        raise ValueError(f"request {item.request_id}: {len(item.rows)} rows but {len(item.predictions)} predictions")
    return LoggedRows(
        item.model,
        item.version,
        item.request_id,
        item.key_id,
        item.at,
        [p["prediction_id"] for p in item.predictions],
        [_json(row) for row in item.rows],
        [_json(p["prediction"]) for p in item.predictions],
        [p.get("score") for p in item.predictions],
    )


def feedback_table(items: list[LoggedRows]) -> pa.Table:
    """Pure: the rows to append for some answered requests (one per prediction), built ARROW_CHUNK_ITEMS requests
    at a time so that no single conversion holds the GIL long."""
    chunks = [items[i : i + ARROW_CHUNK_ITEMS] for i in range(0, len(items), ARROW_CHUNK_ITEMS)] or [[]]
    return pa.concat_tables([_feedback_chunk(chunk) for chunk in chunks])


def _feedback_chunk(items: list[LoggedRows]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in FEEDBACK_SCHEMA.names}
    for item in items:
        n = len(item.prediction_ids)
        columns["prediction_id"].extend(item.prediction_ids)
        columns["request_id"].extend([item.request_id] * n)
        columns["model"].extend([item.model] * n)
        columns["model_version"].extend([item.version] * n)
        columns["predicted_at"].extend([round(item.at * 1_000_000)] * n)  # microseconds, cast below
        columns["inputs"].extend(item.inputs)
        columns["prediction"].extend(item.predictions)
        columns["score"].extend(item.scores)
        columns["key_id"].extend([item.key_id] * n)
    arrays = [
        pa.array(columns[f.name], pa.int64()).cast(f.type)
        if f.name == "predicted_at"
        else pa.array(columns[f.name], f.type)
        for f in FEEDBACK_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=FEEDBACK_SCHEMA)


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
        self._buffer: deque[LoggedRows] = deque()
        self._pending = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._last_drop_log = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def record(self, item: Served) -> None:
        n = len(item.predictions)
        prepared = None if self._pending + n > self.capacity or self._stop else prepare(item)
        with self._lock:
            if prepared is None or self._pending + n > self.capacity or self._stop:
                self.dropped += n
                dropped = True
            else:
                self._buffer.append(prepared)
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

        by_model: dict[str, list[LoggedRows]] = {}
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
