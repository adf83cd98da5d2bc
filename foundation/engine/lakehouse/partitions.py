"""Partition loads: read only one time window of a source, and replace exactly that window in the lakehouse.

A partition's rows are replaced in ONE Delta commit: `write_deltalake(mode="overwrite", predicate=...)`, Delta's
replaceWhere (the files holding rows of the window are removed and the new rows added in the same commit; deltalake
refuses the commit if a written row falls outside the predicate). The quarantine rows of a partition carry its key
in `_partition` and are replaced the same way, so a re-load makes no duplicates there either.

Pure functions build the SQL and the predicates; `replace_partition` and `replace_quarantine_partition` do the I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import CommitProperties, write_deltalake

from foundation.engine.lakehouse.bronze import KEEP_LOG, STATE_KEY, BronzeTable, LoadState, WriteResult
from foundation.engine.sql import quote_ident, quote_literal
from foundation.specs.partitions import FILE_TIME_COLUMN, PartitionsSpec

if TYPE_CHECKING:
    from foundation.specs.source import SourceSpec

PARTITION_COLUMN = "_partition"  # in the quarantine: the key of the partition load that quarantined the row
PARTITION_KEY = "foundation.partition"  # commit metadata of a partition load: its key


@dataclass(frozen=True)
class PartitionWindow:
    """One partition (or a range of them) to load: `key` names it, rows with start <= time < end belong to it."""

    key: str
    start: datetime  # naive UTC
    end: datetime  # naive UTC, exclusive


def partition_column(spec: SourceSpec) -> tuple[str, str]:
    """The landed column a partition's rows are selected on, and its declared type."""
    partitions = _partitions(spec)
    if partitions.column is None:
        return FILE_TIME_COLUMN, "timestamp"
    column = spec.column(partitions.column)
    return partitions.column, (column.type if column is not None and column.type else "timestamp")


def _literal(moment: datetime, column_type: str) -> str:
    if column_type == "date":
        return quote_literal(moment.strftime("%Y-%m-%d"))
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return quote_literal(text + "+00:00" if column_type == "timestamptz" else text)


def window_predicate(spec: SourceSpec, window: PartitionWindow) -> str:
    """`col >= 'start' AND col < 'end'`: the same text selects the window in DuckDB and in a Delta predicate."""
    column, column_type = partition_column(spec)
    name = quote_ident(column)
    return f"{name} >= {_literal(window.start, column_type)} AND {name} < {_literal(window.end, column_type)}"


def files_in_window(spec: SourceSpec, paths: Sequence[str], window: PartitionWindow) -> dict[str, datetime]:
    """File-name partitions: the files whose name's time falls in the window, with that time."""
    partitions = _partitions(spec)
    if partitions.file_name is None:
        return {path: window.start for path in paths}  # column partitions: every file may hold rows of the window
    chosen = {}
    for path in paths:
        moment = partitions.file_time(path)
        if moment is not None and window.start <= moment < window.end:
            chosen[path] = moment
    return chosen


def partition_landing_sql(
    spec: SourceSpec, landing_sql: str, window: PartitionWindow, source_column: str, file_times: dict[str, datetime]
) -> str:
    """The landing SQL of a partition load: only the window's rows (column partitions), or every row of the window's
    files with the time their name carries as `_partition_time` (file-name partitions; `file_times` from
    files_in_window, keyed like the reader's `source_column`)."""
    partitions = _partitions(spec)
    if partitions.column is not None:
        # A row whose partition value is unreadable belongs to no partition: it is quarantined (under this load's
        # key) rather than left unread, like the unparsable lines the reader reports for every file it reads.
        unreadable = f"(_status = 'invalid' AND {quote_ident(partitions.column)} IS NULL)"
        return f"SELECT * FROM ({landing_sql}) WHERE ({window_predicate(spec, window)}) OR {unreadable}"
    whens = " ".join(
        f"WHEN {quote_literal(path)} THEN TIMESTAMP {_literal(moment, 'timestamp')}"
        for path, moment in sorted(file_times.items())
    )
    column = quote_ident(FILE_TIME_COLUMN)
    return f"SELECT *, CASE {quote_ident(source_column)} {whens} END AS {column} FROM ({landing_sql})"


def replace_partition(
    bronze: BronzeTable,
    data: pa.RecordBatchReader,
    spec: SourceSpec,
    window: PartitionWindow,
    state: LoadState,
    metadata: dict[str, str] | None = None,
) -> WriteResult:
    """Replace the window's rows of `bronze` by `data` in one commit (the first load creates the table).

    The commit carries the load state like every load's, and the partition key; nothing is visible unless the whole
    stream was written, and a row of `data` outside the window makes deltalake refuse the commit."""
    custom = {STATE_KEY: state.to_json(), PARTITION_KEY: window.key, **(metadata or {})}
    write_deltalake(
        bronze.uri,
        data,
        mode="overwrite",
        predicate=window_predicate(spec, window) if bronze.keep_log() is not None else None,
        schema_mode="merge",
        storage_options=bronze.storage_options,
        commit_properties=CommitProperties(custom_metadata=custom),
        configuration=KEEP_LOG,
    )
    table = bronze.table()
    assert table is not None
    added = next(iter(table.history(limit=1)), {}).get("operationMetrics", {}).get("num_added_rows", 0)
    return WriteResult(version=table.version(), rows_inserted=int(added), rows_updated=0)


def replace_quarantine_partition(
    quarantine: BronzeTable, rows: pa.Table | None, window: PartitionWindow, metadata: dict[str, str] | None = None
) -> int | None:
    """Replace the quarantine rows of the window's earlier loads by `rows` (none: just remove them); the new
    version, or None when there was nothing to write or remove."""
    existing = quarantine.schema()
    has_column = existing is not None and PARTITION_COLUMN in existing.names
    if rows is None or rows.num_rows == 0:
        if existing is None or not has_column:
            return None  # no earlier partition rows to remove
        rows = existing.empty_table()
    else:
        rows = rows.append_column(PARTITION_COLUMN, pa.array([window.key] * rows.num_rows, pa.string()))
    predicate = f"{quote_ident(PARTITION_COLUMN)} = {quote_literal(window.key)}"
    quarantine.keep_log()
    write_deltalake(
        quarantine.uri,
        rows,
        mode="overwrite" if has_column else "append",  # a table from unpartitioned loads gains the column first
        predicate=predicate if has_column else None,
        schema_mode="merge",
        storage_options=quarantine.storage_options,
        commit_properties=CommitProperties(custom_metadata={PARTITION_KEY: window.key, **(metadata or {})}),
        configuration=KEEP_LOG,
    )
    table = quarantine.table()
    return table.version() if table is not None else None


def _partitions(spec: SourceSpec) -> PartitionsSpec:
    if spec.partitions is None:
        raise ValueError(f"source {spec.name!r} declares no partitions")
    return spec.partitions
