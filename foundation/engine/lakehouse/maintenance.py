"""`foundation maintenance`: compact and vacuum every Delta table of the lakehouse.

Every table under the lakehouse root is found by its `_delta_log` (bronze, quarantine, quality results, gold, ML
predictions and monitoring, the API's prediction/feedback log, the promotion registry), then, per table:

- **compact** (`DeltaTable.optimize.compact`): many small files (one per append: the feedback log writes one every
  few seconds) are rewritten into files of `maintenance.target_file_size`, in one commit; the rows do not change.
- **vacuum** (`DeltaTable.vacuum(full=True)`): files the log no longer references (replaced by a compaction, a
  replace or a merge) and files it never referenced (the `part-*.parquet` a crashed write left behind) are deleted
  once older than `maintenance.retention_hours` (168 h, Delta's default), so a reader still on an older snapshot and
  a write in progress keep theirs. deltalake's own retention check stays on: a retention below a table's
  `delta.deletedFileRetentionDuration` is refused for that table, not forced.

A folder holding `part-*.parquet` files but no commit (a table's first write crashed) gets the same treatment: its
part files older than the retention go. Nothing else is deleted, and a table folder holding another table (which a
full vacuum would treat as unreferenced files) is compacted but not vacuumed.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from foundation.core.settings import MaintenanceSettings
from foundation.engine.lakehouse.object_store import arrow_filesystem, filesystem_path, is_remote

DELTA_LOG = "_delta_log"
MAX_DEPTH = 6  # ml/<usecase>/<model>/api_predictions is 4 deep; room for a partitioned layout under a group
DEFAULT_TARGET_FILE_SIZE = 100 * 1024 * 1024  # deltalake's default when the table sets no delta.targetFileSize
Progress = Callable[[str, str], None]  # (table, step)


@dataclass
class TableMaintenance:
    """What maintenance did (or, with --dry-run, would do) to one table."""

    table: str  # path under the lakehouse root, e.g. bronze/fleet/telemetry
    kind: str  # bronze | quarantine | quality | gold | ml | feedback | registry | uncommitted | other
    uri: str
    files_before: int = 0  # data files of the current snapshot
    files_after: int = 0
    files_compacted: int = 0  # small files rewritten by the compaction (dry run: that would be)
    files_removed: int = 0  # files deleted by the vacuum (dry run: that would be)
    bytes_reclaimed: int = 0
    version_before: int | None = None
    version_after: int | None = None
    status: str = "ok"  # ok | skipped | failed
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MaintenanceReport:
    lakehouse: str
    dry_run: bool
    retention_hours: int
    tables: list[TableMaintenance] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(t.status != "failed" for t in self.tables)

    def totals(self) -> dict[str, int]:
        keys = ("files_before", "files_after", "files_compacted", "files_removed", "bytes_reclaimed")
        return {k: sum(getattr(t, k) for t in self.tables) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "lakehouse": self.lakehouse,
            "dry_run": self.dry_run,
            "retention_hours": self.retention_hours,
            "seconds": round(self.seconds, 3),
            "totals": self.totals(),
            "tables": [t.to_dict() for t in self.tables],
        }


# -- pure parts ------------------------------------------------------------------------------------------------------


def table_kind(relative: str) -> str:
    """Pure: which part of the platform a table (its path under the lakehouse root) belongs to."""
    parts = relative.split("/")
    top = parts[0]
    if top == "bronze":
        return "quarantine" if parts[-1].endswith("__quarantine") else "bronze"
    if top == "ml":
        if parts[-1] == "api_predictions":
            return "feedback"
        return "registry" if len(parts) > 1 and parts[1] == "_registry" else "ml"
    return top if top in ("quality", "gold") else "other"


def table_usecase(relative: str) -> str | None:
    """Pure: the use case a table belongs to (bronze/<uc>/..., gold/<uc>/..., ml/<uc>/...); None when shared."""
    parts = relative.split("/")
    if len(parts) >= 3 and parts[0] in ("bronze", "gold", "ml") and not parts[1].startswith("_"):
        return parts[1]
    return None


def selected(relative: str, settings: MaintenanceSettings, usecase: str | None) -> bool:
    """Pure: is a table in the run (the `maintenance.tables`/`exclude` patterns, then the USECASE argument)?"""
    if not any(fnmatch.fnmatchcase(relative, p) for p in settings.tables):
        return False
    if any(fnmatch.fnmatchcase(relative, p) for p in settings.exclude):
        return False
    return usecase is None or table_usecase(relative) == usecase


def small_files(files: list[tuple[tuple[str, ...], int]], target: int) -> tuple[int, int]:
    """Pure: (files a compaction would rewrite, files it would write) for (partition, size) pairs: per partition,
    the files under the target size when there are two or more of them."""
    per_partition: dict[tuple[str, ...], int] = {}
    for partition, size in files:
        if size < target:
            per_partition[partition] = per_partition.get(partition, 0) + 1
    rewritten = [n for n in per_partition.values() if n >= 2]
    return sum(rewritten), len(rewritten)


# -- I/O -------------------------------------------------------------------------------------------------------------


def _filesystem(root: str, storage_options: dict[str, str] | None) -> tuple[pafs.FileSystem, str]:
    if is_remote(root):
        return arrow_filesystem(root, storage_options), filesystem_path(root)
    return pafs.LocalFileSystem(), root.removeprefix("file://").rstrip("/") or "/"


def _list(fs: pafs.FileSystem, path: str, recursive: bool = False) -> list[pafs.FileInfo]:
    return list(fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=recursive)))


def find_tables(root: str, storage_options: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Paths (relative to `root`) of every Delta table, and of every folder holding part files but no commit."""
    fs, base = _filesystem(root, storage_options)
    tables: list[str] = []
    uncommitted: list[str] = []
    pending = [(base, 0)]
    while pending:
        folder, depth = pending.pop()
        entries = _list(fs, folder)
        names = {e.base_name: e for e in entries}
        relative = folder[len(base) :].strip("/")
        log = names.get(DELTA_LOG)
        if log is not None and log.type == pafs.FileType.Directory and relative:
            has_commit = any(e.base_name.endswith(".json") for e in _list(fs, log.path))
            (tables if has_commit else uncommitted).append(relative)
            continue
        if relative and any(_is_part_file(e) for e in entries):
            uncommitted.append(relative)
        if depth < MAX_DEPTH:
            pending.extend((e.path, depth + 1) for e in entries if e.type == pafs.FileType.Directory)
    return sorted(tables), sorted(uncommitted)


def _is_part_file(info: pafs.FileInfo) -> bool:
    name = info.base_name
    return info.type == pafs.FileType.File and name.startswith("part-") and name.endswith(".parquet")


def _uri(root: str, relative: str) -> str:
    return f"{root.rstrip('/')}/{relative}"


def _data_files(table: DeltaTable) -> list[tuple[tuple[str, ...], int]]:
    """(partition values, size) of every data file of the snapshot, from the log (no data read)."""
    actions = pa.RecordBatchReader.from_stream(table.get_add_actions(flatten=True)).read_all()
    if not actions.num_rows:
        return []
    partitions = [actions.column(c).to_pylist() for c in actions.column_names if c.startswith("partition.")]
    keys = zip(*partitions, strict=True) if partitions else ((),) * actions.num_rows
    sizes = actions.column("size_bytes").to_pylist()
    return [(tuple(str(v) for v in key), int(size)) for key, size in zip(keys, sizes, strict=True)]


def _target_size(table: DeltaTable, settings: MaintenanceSettings) -> int:
    if settings.target_file_size:
        return settings.target_file_size
    configured = table.metadata().configuration.get("delta.targetFileSize")
    return int(configured) if configured else DEFAULT_TARGET_FILE_SIZE


def _sizes_under(fs: pafs.FileSystem, path: str) -> dict[str, int]:
    """File path (relative to `path`) -> size, for every file under a table folder (what a vacuum may delete)."""
    return {
        info.path[len(path) :].lstrip("/"): int(info.size or 0)
        for info in _list(fs, path, recursive=True)
        if info.type == pafs.FileType.File
    }


def maintain_table(
    root: str,
    relative: str,
    settings: MaintenanceSettings,
    dry_run: bool,
    storage_options: dict[str, str] | None = None,
) -> TableMaintenance:
    """Compact, then vacuum, one table; a deltalake refusal is this table's failure, not the run's."""
    uri = _uri(root, relative)
    result = TableMaintenance(relative, table_kind(relative), uri)
    try:
        table = DeltaTable(uri, storage_options=storage_options)
        result.version_before = table.version()
        files = _data_files(table)
        result.files_before = len(files)
        written = 0
        if settings.compact:
            target = _target_size(table, settings)
            if dry_run:
                result.files_compacted, written = small_files(files, target)
            else:
                metrics = table.optimize.compact(target_size=target)
                result.files_compacted = int(metrics.get("numFilesRemoved", 0))
                table = DeltaTable(uri, storage_options=storage_options)
        fs, path = _filesystem(uri, storage_options)
        on_disk = _sizes_under(fs, path) if settings.vacuum else {}
        if any(f"/{DELTA_LOG}/" in f for f in on_disk):
            result.notes.append("holds another Delta table in its folder: not vacuumed (a full vacuum would delete it)")
        elif settings.vacuum:
            removed = table.vacuum(
                retention_hours=settings.retention_hours,
                dry_run=dry_run,
                enforce_retention_duration=True,  # deltalake's check: never below the table's own minimum
                full=True,  # also the files no commit ever referenced (a crashed write's part files)
            )
            result.files_removed = len(removed)
            result.bytes_reclaimed = sum(on_disk.get(f, 0) for f in removed)
        table = DeltaTable(uri, storage_options=storage_options)
        result.version_after = table.version()
        if dry_run:  # what the compaction would leave: the small files of a partition become one (an estimate)
            result.files_after = result.files_before - result.files_compacted + written
        else:
            result.files_after = len(_data_files(table))
    except (DeltaError, TableNotFoundError, OSError) as exc:
        result.status = "failed"
        result.notes.append(_explain(exc, settings))
    return result


def _explain(exc: Exception, settings: MaintenanceSettings) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "retention" in message.lower():
        return (
            f"{message}: deltalake refuses a retention below the table's delta.deletedFileRetentionDuration; raise "
            f"maintenance.retention_hours (now {settings.retention_hours}) in foundation.yaml, or lower that table "
            "property if readers never need older snapshots"
        )
    return message


def clean_uncommitted(
    root: str, relative: str, settings: MaintenanceSettings, dry_run: bool, storage_options: dict[str, str] | None
) -> TableMaintenance:
    """A folder with part files and no commit: a first write that crashed. Its part files past the retention go."""
    uri = _uri(root, relative)
    result = TableMaintenance(relative, "uncommitted", uri)
    fs, path = _filesystem(uri, storage_options)
    cutoff = datetime.now(UTC) - timedelta(hours=settings.retention_hours)
    parts = [e for e in _list(fs, path) if _is_part_file(e)]
    old = [e for e in parts if e.mtime is not None and e.mtime.astimezone(UTC) < cutoff]
    result.files_before = len(parts)
    if settings.vacuum:
        for info in old:
            if not dry_run:
                fs.delete_file(info.path)
            result.files_removed += 1
            result.bytes_reclaimed += int(info.size or 0)
    result.files_after = len(parts) - (0 if dry_run else result.files_removed)
    result.notes.append("part files with no commit (a first write that crashed)")
    return result


def run_maintenance(
    lakehouse_root: str,
    settings: MaintenanceSettings,
    *,
    usecase: str | None = None,
    dry_run: bool = False,
    storage_options: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> MaintenanceReport:
    """Maintain every selected table of the lakehouse, one after the other; never raises for one table's failure."""
    started = time.perf_counter()
    report = MaintenanceReport(lakehouse_root, dry_run, settings.retention_hours)
    tables, uncommitted = find_tables(lakehouse_root, storage_options)
    for relative in [t for t in tables if selected(t, settings, usecase)]:
        if progress:
            progress(relative, "compacting and vacuuming" if not dry_run else "inspecting")
        report.tables.append(maintain_table(lakehouse_root, relative, settings, dry_run, storage_options))
    for relative in [u for u in uncommitted if selected(u, settings, usecase)]:
        if progress:
            progress(relative, "removing uncommitted part files" if not dry_run else "inspecting")
        report.tables.append(clean_uncommitted(lakehouse_root, relative, settings, dry_run, storage_options))
    report.seconds = time.perf_counter() - started
    return report
