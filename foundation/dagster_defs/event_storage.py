"""Dagster's SQLite event log, with its connections kept open: the storage `foundation` names in the dagster.yaml it
writes for an embedded (SQLite) instance.

Dagster's `SqliteEventLogStorage` opens a new SQLAlchemy engine and SQLite connection for every operation
(`NullPool`) and closes it after one transaction. Closing the last connection of a WAL database checkpoints the WAL
into the database file and deletes it, and every commit is fsync'ed (`synchronous=FULL`): a run of the demo writes
about 450-600 events, several of them to two databases (the run's shard and the index), at 3-20 ms each. This subclass
keeps one connection per database open (the index shard and the last few run shards) and commits with
`PRAGMA synchronous=NORMAL` in WAL mode: a commit is atomic and survives a crash of the process (what `foundation
run` dying mid-run is); on an OS crash or power cut, the transactions of the last moments before it may be lost
(SQLite's WAL + NORMAL guarantee), never the database's consistency. The files, tables and schema are Dagster's own:
`dagster dev`, `foundation ui` and Dagster's own SQLite storage read them as before.

One behaviour needs care: Dagster's UI follows a live run by watching the run's `<run_id>.db` file change. With a
connection kept open, a commit lands in `<run_id>.db-wal` and reaches `<run_id>.db` only at a checkpoint, so the
watcher here also reacts to the `-wal` file.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dagster._config.config_schema import UserConfigSchema
from dagster._core.event_api import EventHandlerFn
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from watchdog.events import FileSystemEvent

RUN_SHARDS_KEPT_OPEN = 4  # a run writes to its own shard; a UI process reads a few at a time (the rest reopen)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """On every new connection: NORMAL sync (fsync at checkpoints, not at each commit) in WAL mode."""
    cursor = dbapi_connection.cursor()
    try:
        # WAL is what Dagster's own schema creation sets; it is persistent in the file, set here too for old files.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class KeptOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one open connection per shard, reused across operations (same files and schema).

    dagster.yaml::

        event_log_storage:
          module: foundation.dagster_defs.event_storage
          class: KeptOpenSqliteEventLogStorage
          config:
            base_dir: /path/to/dagster_home/history/runs/
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()  # shard -> engine, most recently used last
        self._engines_pid = os.getpid()
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return SqliteEventLogStorage.config_type()

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> KeptOpenSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine (one pooled connection), created on first use; called under `_db_lock`."""
        if self._engines_pid != os.getpid():
            # A forked child must not use its parent's open SQLite connections: forget them (not closed: the
            # parent still owns them) and open its own.
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines.clear()
            self._engines_pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = sa.create_engine(
            self.conn_string_for_shard(shard),
            # Every use is under `_db_lock`: one connection kept per shard; Dagster's schema check opens a second
            # one for a moment (an overflow connection, closed when returned).
            pool_size=1,
            max_overflow=4,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        self._engines[shard] = engine
        run_shards = [name for name in self._engines if name != INDEX_SHARD_NAME]
        for name in run_shards[:-RUN_SHARDS_KEPT_OPEN]:
            self._engines.pop(name).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def watch(self, run_id: str, cursor: str | None, callback: EventHandlerFn) -> None:
        if not self._obs:
            from watchdog.observers import Observer  # lazy: only a watched run (the UI) needs the file watcher

            self._obs = Observer()
            self._obs.start()
        watchdog = _WalAwareWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (watchdog, self._obs.schedule(watchdog, self._base_dir, recursive=True))

    def _close_connections(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
            # A shard's schema is checked again on next use: the files may have been deleted in between.
            self._initialized_dbs = set()

    def wipe(self) -> None:
        self._close_connections()  # before the run shards' files are deleted under them
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._close_connections()


class _WalAwareWatchdog(SqliteEventLogStorageWatchdog):
    """Dagster's run watcher, also woken by the run's `-wal` file (where commits land between checkpoints)."""

    def __init__(self, storage: SqliteEventLogStorage, run_id: str, callback: EventHandlerFn, cursor: str | None):
        super().__init__(storage, run_id, callback, cursor)
        db_path = storage.path_for_shard(run_id)
        self._patterns = [db_path, f"{db_path}-wal"]  # `patterns` is read-only: set what the property returns

    def on_modified(self, event: FileSystemEvent) -> None:
        self._process_log()
