"""The quarantine's commits, made after the bronze commit: a load's rows, and the rows a crashed load left pending."""

from __future__ import annotations

import pyarrow as pa

from foundation.engine.ingest.crash_points import crash_point
from foundation.engine.ingest.pending_quarantine import PendingQuarantine
from foundation.engine.lakehouse.bronze import BronzeTable
from foundation.engine.lakehouse.partitions import PartitionWindow, replace_quarantine_partition


class QuarantineWriteError(RuntimeError):
    """The bronze commit was made but the quarantine append failed: its rows wait in the pending file."""


def write_quarantine(
    quarantine: BronzeTable, rows: pa.Table, load_id: str, partition: PartitionWindow | None
) -> int | None:
    """A load's quarantine rows in one commit: appended, or replacing the partition's earlier ones."""
    metadata = {"foundation.load_id": load_id}
    if partition is not None:
        return replace_quarantine_partition(quarantine, rows, partition, metadata)
    return quarantine.append_rows(rows, metadata)


def settle_pending(bronze: BronzeTable, quarantine: BronzeTable, pending: PendingQuarantine) -> int | None:
    """Finish what a crashed load left: its pending quarantine rows; returns the rows written (None: no load's).

    A load whose bronze commit was made owns its rows: they are written (appended, or replacing its partition's),
    unless the crash came after that write. A load that never committed recorded no state, so its input is
    read (and its invalid rows quarantined) again: its pending rows are dropped. Idempotent: a crash in here is
    settled by the next run.
    """
    pending.remove_partial()
    written = None
    for load_id in pending.load_ids():
        if bronze.has_load(load_id) and not quarantine.has_load(load_id):
            rows, partition = pending.read(load_id)
            write_quarantine(quarantine, rows, load_id, partition)
            written = (written or 0) + rows.num_rows
            crash_point("after_settle_quarantine_commit")
        pending.remove(load_id)
    return written
