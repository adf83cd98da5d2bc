"""Bronze Delta tables: atomic writes in three modes, with the load state committed in the same transaction.

The incremental state (files already landed, last cursor value) lives in the custom metadata of the Delta
commit that landed the data (like dlt keeps state next to the data): the two cannot disagree, and a failed
write leaves both at the previous version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from foundation.engine.sql import quote_ident

STATE_KEY = "foundation.state"
LOAD_ID_KEY = "foundation.load_id"
WriteMode = Literal["append", "replace", "merge"]
RECENT_COMMITS = 50  # where the newest load almost always is; the whole history is read only when it is not
# When Delta writes a checkpoint (every 100 commits) it deletes the log files older than delta.logRetentionDuration
# (30 days), and the commit holding the load state may be among them: the next run would land every file again.
# Our tables keep their whole log (one small JSON file per commit); their data files are vacuumed as before.
KEEP_LOG = {"delta.enableExpiredLogCleanup": "false"}


@dataclass
class LoadState:
    """What earlier loads of a source landed: file fingerprints and the highest cursor value."""

    files: dict[str, list[int]] = field(default_factory=dict)  # path -> [size, mtime_ns]
    cursor: str | None = None

    def to_json(self) -> str:
        return json.dumps({"files": self.files, "cursor": self.cursor}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LoadState:
        data = json.loads(text)
        return cls(files=dict(data.get("files", {})), cursor=data.get("cursor"))


@dataclass(frozen=True)
class WriteResult:
    version: int
    rows_inserted: int
    rows_updated: int


class BronzeTable:
    """One Delta table of the lakehouse."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None) -> None:
        self.uri = uri
        self.storage_options = storage_options or None

    def table(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def version(self) -> int | None:
        table = self.table()
        return table.version() if table is not None else None

    def schema(self) -> pa.Schema | None:
        table = self.table()
        return pa.schema(table.schema().to_arrow()) if table is not None else None

    def _newest_commit(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The newest commit that is `wanted`: among the recent ones, else in the whole history (commits that are not
        loads, such as compactions, vacuums and table properties, can follow a load in any number)."""
        table = self.table()
        if table is None:
            return None
        recent = table.history(limit=RECENT_COMMITS)
        found = next((commit for commit in recent if wanted(commit)), None)
        if found is None and len(recent) == RECENT_COMMITS:
            found = next((commit for commit in table.history() if wanted(commit)), None)
        return found

    def previous_load_rows(self) -> int | None:
        """Rows the newest load landed, from its commit's metrics (merge: source rows; write: added rows)."""
        commit = self._newest_commit(lambda c: LOAD_ID_KEY in c)
        if commit is None:
            return None
        metrics = commit.get("operationMetrics", {})
        return int(metrics.get("num_source_rows", metrics.get("num_added_rows", 0)))

    def last_load_at(self) -> datetime | None:
        """When the newest load committed (the Delta commit's timestamp)."""
        commit = self._newest_commit(lambda c: LOAD_ID_KEY in c)
        return None if commit is None else datetime.fromtimestamp(commit["timestamp"] / 1000, tz=UTC)

    def row_count(self) -> int | None:
        """Rows in the current version, from the Delta log's file statistics (no data read)."""
        table = self.table()
        if table is None:
            return None
        # from_stream, not pa.table(): the latter imports pandas (0.8 s) to read an arro3 table
        actions = pa.RecordBatchReader.from_stream(table.get_add_actions(flatten=True)).read_all()
        if actions.num_rows == 0:
            return 0
        return int(pc.sum(actions.column("num_records")).as_py() or 0)

    def state(self, as_of: int | None = None) -> LoadState:
        """The load state recorded by the newest commit that has one (at or before version `as_of`)."""
        commit = self._newest_commit(lambda c: STATE_KEY in c and (as_of is None or c.get("version", -1) <= as_of))
        return LoadState() if commit is None else LoadState.from_json(commit[STATE_KEY])

    def write(
        self,
        data: pa.RecordBatchReader,
        mode: WriteMode,
        state: LoadState,
        primary_key: list[str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        """Land `data` in one Delta commit (nothing is visible unless the whole stream was written)."""
        custom = {STATE_KEY: state.to_json(), **(metadata or {})}
        props = CommitProperties(custom_metadata=custom)
        existing = self.keep_log()
        if mode == "merge" and existing is not None:
            predicate = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in primary_key or [])
            metrics = (
                existing.merge(
                    source=data,
                    predicate=predicate,
                    source_alias="s",
                    target_alias="t",
                    merge_schema=True,
                    commit_properties=props,
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            return WriteResult(
                version=self._latest_version(),
                rows_inserted=int(metrics.get("num_target_rows_inserted", 0)),
                rows_updated=int(metrics.get("num_target_rows_updated", 0)),
            )
        delta_mode = "overwrite" if mode == "replace" else "append"
        write_deltalake(
            self.uri,
            data,
            mode=delta_mode,
            schema_mode="overwrite" if mode == "replace" else "merge",
            storage_options=self.storage_options,
            commit_properties=props,
            configuration=KEEP_LOG,  # a new table's; an existing one has it from keep_log()
        )
        table = self.table()
        assert table is not None
        added = next(iter(table.history(limit=1)), {}).get("operationMetrics", {}).get("num_added_rows", 0)
        return WriteResult(version=table.version(), rows_inserted=int(added), rows_updated=0)

    def has_load(self, load_id: str) -> bool:
        """Whether a commit of load `load_id` was made (the whole history: called only to settle after a crash)."""
        table = self.table()
        if table is None:
            return False
        return any(commit.get(LOAD_ID_KEY) == load_id for commit in table.history())

    def keep_log(self) -> DeltaTable | None:
        """The table (None before its first write), set to keep its whole log if a table made before was not."""
        table = self.table()
        if table is not None and any(table.metadata().configuration.get(k) != v for k, v in KEEP_LOG.items()):
            table.alter.set_table_properties(KEEP_LOG)
            table = self.table()
        return table

    def _latest_version(self) -> int:
        table = self.table()
        assert table is not None
        return table.version()

    def append_rows(self, rows: pa.Table, metadata: dict[str, Any] | None = None) -> int:
        """Plain append (used for quarantine tables); returns the new version."""
        props = CommitProperties(custom_metadata={k: str(v) for k, v in (metadata or {}).items()})
        self.keep_log()  # a quarantine's commits say which loads it holds (settling a crashed load reads them)
        write_deltalake(
            self.uri,
            rows,
            mode="append",
            schema_mode="merge",
            storage_options=self.storage_options,
            commit_properties=props,
            configuration=KEEP_LOG,
        )
        return self._latest_version()
