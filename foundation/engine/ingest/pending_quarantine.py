"""The quarantine rows of one load, kept durably until that load's bronze commit is settled.

Why a file and not the quarantine table itself: the bronze commit (data + load state) is a load's commit point, and
the invalid rows are only all known once the Delta writer has read the whole stream, from inside that stream. A
second Delta write from there is refused by deltalake ("Cannot start a runtime from within a runtime"). So at the
stream's end the rows go to one Parquet file named after the load id, in a folder beside the quarantine table, before
the bronze commit. After the commit they are appended to the quarantine table and the file is removed. A crash
leaves at most this file behind, and the next load of the source settles it (`SourceLoader._settle_pending`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

import pyarrow as pa
import pyarrow.fs as pafs

from foundation.engine.lakehouse.object_store import arrow_filesystem, filesystem_path
from foundation.engine.lakehouse.partitions import PartitionWindow

PENDING_SUFFIX = "_pending"  # <source>__quarantine_pending: no _delta_log, so never listed as a table
FILE_SUFFIX = ".parquet"
PARTIAL_SUFFIX = ".partial"  # a write cut short by a crash; removed by the next settle
PARTITION_KEY = b"foundation.partition"  # Parquet metadata: the window a partition load replaces


def pending_uri(quarantine_uri: str) -> str:
    return quarantine_uri.rstrip("/") + PENDING_SUFFIX


class PendingQuarantine:
    """One folder of `<load_id>.parquet` files, on the lakehouse's filesystem (local or object storage)."""

    def __init__(self, quarantine_uri: str, storage_options: Mapping[str, str] | None = None) -> None:
        self.uri = pending_uri(quarantine_uri)
        self.filesystem = arrow_filesystem(self.uri, storage_options)
        self.folder = filesystem_path(self.uri)

    def _path(self, load_id: str, suffix: str = FILE_SUFFIX) -> str:
        return f"{self.folder}/{load_id}{suffix}"

    def where(self, load_id: str) -> str:
        """Where a load's pending rows are, for messages."""
        return f"{self.uri}/{load_id}{FILE_SUFFIX}"

    def _names(self) -> list[str]:
        selector = pafs.FileSelector(self.folder, allow_not_found=True)
        return sorted(info.base_name for info in self.filesystem.get_file_info(selector) if info.is_file)

    def load_ids(self) -> list[str]:
        """Loads whose rows are pending, oldest first (load ids sort by time)."""
        return [name.removesuffix(FILE_SUFFIX) for name in self._names() if name.endswith(FILE_SUFFIX)]

    def remove_partial(self) -> None:
        """Files whose write a crash cut short: their load never reached its commit."""
        for name in self._names():
            if name.endswith(PARTIAL_SUFFIX):
                self.filesystem.delete_file(f"{self.folder}/{name}")

    def write(self, load_id: str, rows: pa.Table, partition: PartitionWindow | None = None) -> None:
        """Write then rename, so a file under its final name is always whole (an object store's put is atomic)."""
        import pyarrow.parquet as pq  # lazy: 25 ms of import that loads without invalid rows never need

        if partition is not None:
            window = {"key": partition.key, "start": partition.start.isoformat(), "end": partition.end.isoformat()}
            rows = rows.replace_schema_metadata({PARTITION_KEY: json.dumps(window).encode()})
        final = self._path(load_id)
        if isinstance(self.filesystem, pafs.LocalFileSystem):
            self.filesystem.create_dir(self.folder, recursive=True)  # (object stores have no folders: no marker)
            partial = self._path(load_id, PARTIAL_SUFFIX)
            pq.write_table(rows, partial, filesystem=self.filesystem)
            self.filesystem.move(partial, final)
        else:
            pq.write_table(rows, final, filesystem=self.filesystem)

    def read(self, load_id: str) -> tuple[pa.Table, PartitionWindow | None]:
        """A load's rows, and the partition window it replaces (None: an unpartitioned load, whose rows append)."""
        import pyarrow.parquet as pq  # lazy: read only to settle after a crash

        rows = pq.read_table(self._path(load_id), filesystem=self.filesystem)
        window = (rows.schema.metadata or {}).get(PARTITION_KEY)
        rows = rows.replace_schema_metadata(None)
        if window is None:
            return rows, None
        data = json.loads(window)
        start, end = datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"])
        return rows, PartitionWindow(key=data["key"], start=start, end=end)

    def remove(self, load_id: str) -> None:
        path = self._path(load_id)
        if self.filesystem.get_file_info(path).type == pafs.FileType.NotFound:
            return
        self.filesystem.delete_file(path)
        if not isinstance(self.filesystem, pafs.LocalFileSystem) and not self._names():
            self.filesystem.delete_dir(self.folder)  # the folder marker pyarrow's S3 client leaves in place of the file
