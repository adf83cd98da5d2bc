"""The prediction log: every prediction the API answers is logged to the lakehouse, exactly once.

Answered => logged, even under kill -9: the request path turns its rows into the log's values (JSON text: a few
microseconds a row) and hands them to the spool (serving.spool), a local append-only journal per worker process
whose writer thread makes every waiting request durable with one `fdatasync` (group commit); the answer is sent
only then. A flusher thread moves the spool to one Delta table per model every `prediction_log_flush_s` seconds
or `prediction_log_flush_rows` rows, and once more at shutdown, from the copy it keeps in memory (up to
`prediction_log_queue` rows; beyond, it reads the spool back), then deletes the segments it moved. Each Delta
commit carries the spool's id and its newest segment number as a Delta transaction (`txn` action:
`DeltaTable.transaction_version`), so a replay after a crash between the commit and the deletion skips what the
table holds: exactly once per `prediction_id`. At start-up the API replays what a killed process left: its own
spool, and any spool no live worker holds (fewer workers than before). When the spool cannot be written (disk full),
the request gets a 503 rather than an answer that would not be logged.

The JSON is made on the request path on purpose: made by the writer, 5,000 rows at a time, it held the GIL in
bursts of 10-25 ms that every request in flight waited through (bench/serving.py: p99), and buffered row dicts
kept the garbage collector busy; strings are not tracked by it.

Table: `<lakehouse>/ml/<usecase>/<model>/api_predictions` for a registered model `<usecase>__<model>` (next to the
batch `predictions`), `<lakehouse>/ml/_api/<name>/api_predictions` otherwise. Columns: prediction_id,
request_id, model, model_version, predicted_at (UTC), inputs (JSON object of the row), prediction (JSON), score,
key_id (the key's hash id, never the key). Monitoring joins it with ground truth on the inputs' entity and time
(`json_extract_string(inputs, '$.truck_id')`) or on `prediction_id` where the client sends it back.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from deltalake import CommitProperties, Transaction
from fastapi import HTTPException

from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.object_store import is_delta, open_delta, write_delta
from serving.spool import HEADER, GroupCommitWriter, SpoolError, SpoolSlot, encode_frame, other_slots

log = logging.getLogger("serving.prediction_log")

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


def encode_record(item: LoggedRows) -> bytes:
    """Pure: a prepared request as a spool record (a JSON array of LoggedRows' fields, in order)."""
    return orjson.dumps(
        [
            item.model,
            item.version,
            item.request_id,
            item.key_id,
            item.at,
            item.prediction_ids,
            item.inputs,
            item.predictions,
            item.scores,
        ]
    )


def decode_record(payload: bytes) -> LoggedRows:
    """Pure: the inverse of encode_record."""
    return LoggedRows(*orjson.loads(payload))


def spool_root(workspace: Workspace) -> Path:
    """Where the spools live: `api.prediction_spool_dir`, else `<state_dir>/prediction_spool`."""
    configured = workspace.settings.api.prediction_spool_dir
    return Path(workspace.resolve(configured)) if configured else workspace.state_dir / "prediction_spool"


class PredictionLog:
    """Spool (durable before the answer) + one flusher thread (spool -> Delta, exactly once).

    `await record(served)` returns once the request's predictions are in the spool, or raises a 503 HTTPException
    (the request is then not answered). `flush` moves what the spool holds to the lakehouse; `close` flushes the
    rest and releases the spool. Opening replays what a previous process left in the spools it can claim."""

    def __init__(
        self,
        workspace: Workspace,
        flush_s: float,
        flush_rows: int,
        capacity: int,
        on_written: Any = None,  # callable(model, rows)
        on_refused: Any = None,  # callable(model, rows)
    ) -> None:
        self.workspace = workspace
        self.flush_s = flush_s
        self.flush_rows = flush_rows
        self.capacity = capacity
        self.on_written = on_written
        self.on_refused = on_refused
        self.written = 0
        self.refused = 0
        self.replayed = 0
        self.read_back = 0  # requests the flush read back from the spool (not kept in memory)
        self._last_refusal_log = 0.0
        self._wake = threading.Event()
        self._stop = False
        self._flush_lock = threading.Lock()  # one flush at a time (the flusher thread, close, tests)
        root = spool_root(workspace)
        try:
            self.slot = SpoolSlot.claim_free(root)
        except OSError as exc:
            raise RuntimeError(
                f"cannot open the prediction spool under {root}: {exc}; set api.prediction_spool_dir to a writable "
                "folder, or turn the prediction log off (api.prediction_log: false)"
            ) from exc
        self.app_id = APP_ID_PREFIX + self.slot.id
        self._committed: dict[str, int | None] = {}  # per model: the last spool segment in its table, for this slot
        # what the spool's sealed segments hold, kept in memory so that the flush need not read them back; when
        # incomplete (over `capacity`, a failed commit, at start-up), the flush reads the segments instead
        self._memory: list[tuple[int, LoggedRows]] = []
        self._memory_rows = 0
        left = self.slot.segments()
        self._memory_complete = not left
        self._writer = GroupCommitWriter(self.slot, (left[-1] + 1) if left else 1, self._on_durable)
        # what a killed process left: this slot's segments, then the slots no live worker holds (a failure is
        # logged and the segments stay: the next flush, or the next start for another slot, retries)
        try:
            self.replayed = self.flush()
            for other in other_slots(root, self.slot):
                try:
                    self.replayed += _replay_slot(workspace, other)
                finally:
                    other.release()
        except Exception:
            log.exception("prediction log: the replay of the spool failed (kept on disk, retried)")
        if self.replayed:
            log.info("prediction log: %d prediction(s) replayed from the spool into the lakehouse", self.replayed)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    async def record(self, item: Served) -> None:
        prepared = prepare(item)
        try:
            await self._writer.append(encode_frame(encode_record(prepared)), prepared)
        except SpoolError as exc:
            n = len(prepared.prediction_ids)
            self.refused += n
            if self.on_refused is not None:
                self.on_refused(item.model, n)
            now = time.monotonic()
            if now - self._last_refusal_log > 10:  # at most one line per 10 s: a full disk must not flood the log
                self._last_refusal_log = now
                log.error(
                    "prediction spool %s: %s: %d prediction(s) refused so far (answered 503)",
                    self.slot.folder,
                    exc,
                    self.refused,
                )
            raise HTTPException(
                503, "the prediction log cannot record this prediction, so it is not answered: retry later"
            ) from None

    def _on_durable(self, items: list[LoggedRows], seq: int) -> None:
        """The spool writer, under its lock: a group of requests is durable in segment `seq`."""
        if not self._memory_complete:
            return
        self._memory.extend((seq, item) for item in items)
        self._memory_rows += sum(len(item.prediction_ids) for item in items)
        if self._memory_rows > self.capacity:  # the flush will read the segments back instead
            self._memory, self._memory_rows, self._memory_complete = [], 0, False
            self._wake.set()
        elif self._memory_rows >= self.flush_rows:
            self._wake.set()

    def flush(self) -> int:
        """Move the spool's sealed segments to the lakehouse, then delete them (the flusher thread calls it; tests
        may too). Returns the rows appended."""
        with self._flush_lock:
            with self._writer.lock:
                self._writer.rotate()  # what was written so far is sealed; new records go to a new segment
                current = self._writer.seq
                memory, complete = self._memory, self._memory_complete
                self._memory, self._memory_rows, self._memory_complete = [], 0, True
            sealed = [seq for seq in self.slot.segments() if seq < current]
            if not sealed:
                return 0
            try:
                items = memory if complete else _read_segments(self.slot, sealed)
                if not complete:
                    self.read_back += len(items)
                written, ok = _commit(self.workspace, self.app_id, self._committed, items, sealed[-1], self.on_written)
                self.written += written
                if ok:
                    self.slot.delete(sealed)
            except BaseException:
                ok = False
                raise
            finally:
                if not ok:  # the segments stay on disk: the next flush reads them back and retries
                    with self._writer.lock:
                        self._memory, self._memory_rows, self._memory_complete = [], 0, False
            return written

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            if self._stop:
                break
            try:
                self.flush()
            except Exception:  # never let the flusher die silently
                log.exception("prediction log flush failed")

    def close(self, timeout: float = 60.0) -> None:
        """Stop taking records, write what waits to the spool, flush it to the lakehouse, release the spool."""
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        self._writer.stop(timeout)
        try:
            self.flush()
        finally:
            self._writer.close_file()
            self.slot.release()
        log.info(
            "prediction log closed: %d written, %d refused; spool: %d request(s) in %d disk flush(es)",
            self.written,
            self.refused,
            self._writer.records,
            self._writer.groups,
        )


APP_ID_PREFIX = "foundation.prediction_spool."


def _read_segments(slot: SpoolSlot, seqs: list[int]) -> list[tuple[int, LoggedRows]]:
    items = []
    for seq in seqs:
        records, ignored = slot.read(seq)
        if ignored:
            log.warning(
                "prediction spool %s: %d byte(s) at the end of segment %d ignored (a write cut by a crash; "
                "never acknowledged)",
                slot.folder,
                ignored,
                seq,
            )
        items.extend((seq, decode_record(record)) for record in records)
    return items


def _replay_slot(workspace: Workspace, slot: SpoolSlot) -> int:
    """Move every segment of a slot no process holds to the lakehouse (start-up). Returns the rows appended."""
    sealed = slot.segments()
    if all(slot.path(seq).stat().st_size <= len(HEADER) for seq in sealed):  # nothing was ever written
        slot.delete(sealed[:-1])
        return 0
    os.close(slot.create_segment(sealed[-1] + 1))  # the newest number stays on disk: numbers never go back
    items = _read_segments(slot, sealed)
    written, ok = _commit(workspace, APP_ID_PREFIX + slot.id, {}, items, sealed[-1], None)
    if ok:
        slot.delete(sealed)
    return written


def _commit(
    workspace: Workspace,
    app_id: str,
    committed: dict[str, int | None],
    items: list[tuple[int, LoggedRows]],
    upto: int,
    on_written: Any,
) -> tuple[int, bool]:
    """Append to each model's table the items of segments it does not hold yet, recording `upto` (the newest
    segment) as the spool's transaction version in the same Delta commit: a replay after a crash between this commit
    and the segments' deletion skips them. (rows appended, whether every table succeeded)."""
    by_model: dict[str, list[tuple[int, LoggedRows]]] = {}
    for seq, item in items:
        by_model.setdefault(item.model, []).append((seq, item))
    total, ok = 0, True
    for model, entries in by_model.items():
        uri = feedback_uri(workspace, model)
        try:
            if model not in committed:
                table_of = open_delta(workspace, uri) if is_delta(workspace, uri) else None
                committed[model] = table_of.transaction_version(app_id) if table_of is not None else None
            done = committed[model]
            todo = [item for seq, item in entries if done is None or seq > done]
            if not todo:
                continue
            table = feedback_table(todo)
            write_delta(
                workspace,
                uri,
                table,
                mode="append",
                commit_properties=CommitProperties(app_transactions=[Transaction(app_id, upto)]),
            )
        except Exception as exc:  # the lakehouse is unreachable: the spool keeps them, the next flush retries
            ok = False
            committed.pop(model, None)
            log.error(
                "cannot append the prediction log of %s to %s (kept in the spool, retried): %s: %s",
                model,
                uri,
                type(exc).__name__,
                exc,
            )
            continue
        committed[model] = upto
        total += table.num_rows
        if on_written is not None:
            on_written(model, table.num_rows)
    return total, ok
