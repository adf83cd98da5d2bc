"""Quarantine records: every row a load did not land, with where it came from, which rule(s) and why."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from foundation.engine.connectors.files import SOURCE_FILE_COLUMN
from foundation.engine.connectors.landing_sql import LINE_COLUMN

QUARANTINE_SCHEMA = pa.schema(
    [
        ("_load_id", pa.string()),
        ("_loaded_at", pa.timestamp("us", tz="UTC")),
        (SOURCE_FILE_COLUMN, pa.string()),
        ("_source_line", pa.int64()),
        ("_rule", pa.string()),  # parse | type | the failing check names
        ("_invalid_reason", pa.string()),
        ("_raw_record", pa.string()),
        ("_raw_bytes", pa.binary()),  # a rejected line that is not valid UTF-8, byte for byte (else null)
    ]
)


def typing_records(batch: pa.RecordBatch) -> list[dict[str, object]]:
    """Rows the landing SQL flagged invalid (a value that does not cast, a missing required value); their line when
    the load numbers lines."""
    lines = batch.column(LINE_COLUMN).to_pylist() if LINE_COLUMN in batch.schema.names else [None] * batch.num_rows
    return [
        {SOURCE_FILE_COLUMN: file, "_source_line": line, "_rule": "type", "_invalid_reason": reason, "_raw_record": raw}
        for file, line, reason, raw in zip(
            batch.column(SOURCE_FILE_COLUMN).to_pylist(),
            lines,
            batch.column("_invalid_reason").to_pylist(),
            batch.column("_raw_record").to_pylist(),
            strict=True,
        )
    ]


def reject_records(rejects: list[dict[str, object]]) -> list[dict[str, object]]:
    """Lines DuckDB's CSV reader could not parse (ragged rows, unparsable values of inferred columns)."""
    return [
        {
            SOURCE_FILE_COLUMN: reject["file"],
            "_source_line": reject["line"],
            "_rule": "parse",
            "_invalid_reason": f"{reject['error_type']}: {reject['message']}",
            "_raw_record": reject["raw_line"],
            "_raw_bytes": reject.get("raw_bytes"),
        }
        for reject in rejects
    ]


def quarantine_table(records: list[dict[str, object]], load_id: str, now: datetime) -> pa.Table:
    rows = [{**record, "_load_id": load_id, "_loaded_at": now} for record in records]
    return pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)
