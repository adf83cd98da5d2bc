"""The DuckDB warehouse dbt builds into: one writer at a time, and bronze views any process can read.

DuckDB allows one read-write process per database file, so every writer (the bronze-view refresh, `dbt build`, the
gold export) takes an exclusive file lock first and waits for it instead of failing on DuckDB's lock error.

dbt's sources are persistent views `bronze.<uc>__<source>` over `read_parquet([the snapshot's files])`: views over
files, not over objects registered in one connection, so any process opening the warehouse can read them. They pin
the Delta version current when they were (re)created, which is right before each dbt build.

On object storage (s3://...) DuckDB has no reader of its own here (httpfs is not bundled and cannot be downloaded at
run time), so each source's snapshot is copied into a table `bronze.<uc>__<source>` instead, read through pyarrow's
filesystem with the workspace's storage options (foundation.engine.lakehouse.object_store).
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.dbt.sources import BRONZE_SCHEMA, declared_columns, source_view_name
from foundation.engine.dbt.spark import SPARK_TARGET, write_bronze_views
from foundation.engine.lakehouse.object_store import is_remote, open_delta, register_remote_files, storage_options_of
from foundation.engine.sql import quote_ident, quote_literal


class WarehouseBusyError(TimeoutError):
    """Another process kept the warehouse lock longer than we were willing to wait."""


def warehouse_path(workspace: Workspace) -> Path:
    return Path(workspace.resolve(workspace.settings.duckdb.path))


@contextlib.contextmanager
def warehouse_lock(
    workspace: Workspace, timeout_s: float = 3600.0, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Exclusive lock on the warehouse file (a sibling `.lock` file, released by the OS if the process dies)."""
    path = warehouse_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        waited = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                if time.monotonic() > deadline:
                    raise WarehouseBusyError(
                        f"{path} is being written by another run for more than {timeout_s:.0f} s "
                        f"(lock {lock_path}); wait for it to finish, or check for a stuck process"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _empty_select(columns: list[tuple[str, str]]) -> str:
    """A typed, empty relation: what a source reads before its first load."""
    cols = ", ".join(f"CAST(NULL AS {t}) AS {quote_ident(n)}" for n, t in columns) or "NULL AS _empty"
    return f"SELECT {cols} WHERE false"


def bronze_view_sql(workspace: Workspace, source: SourceRef, con: duckdb.DuckDBPyConnection | None = None) -> str:
    """The SELECT a source's view runs: its Delta snapshot's Parquet files, or an empty typed relation. On object
    storage, the snapshot registered in `con` (lives as long as the connection: copy it into a table)."""
    uri = workspace.bronze_uri(source.usecase, source.name)
    try:
        table = open_delta(workspace, uri)
    except TableNotFoundError:
        return _empty_select(declared_columns(source))
    files = table.file_uris()
    if not files:
        fields = table.schema().fields
        return _empty_select([(f.name, _duckdb_type_of(f.type)) for f in fields] or declared_columns(source))
    if is_remote(files[0]):
        if con is None:
            raise ValueError(f"{uri}: a snapshot on object storage is read through a connection: pass `con`")
        schema = pa.schema(table.schema().to_arrow())
        return f"SELECT * FROM {quote_ident(register_remote_files(con, files, schema, storage_options_of(workspace)))}"
    paths = "[" + ", ".join(quote_literal(f) for f in files) + "]"
    return f"SELECT * FROM read_parquet({paths}, union_by_name=true)"


def _drop_other_kind(con: duckdb.DuckDBPyConnection, name: str, kind: str) -> None:
    """Drop `bronze.<name>` when it is a view and a table is wanted, or the reverse (the lakehouse root moved)."""
    other = "VIEW" if kind == "TABLE" else "TABLE"
    catalog = "duckdb_views()" if other == "VIEW" else "duckdb_tables()"
    found = con.execute(
        f"SELECT count(*) FROM {catalog} WHERE schema_name = ? AND {other.lower()}_name = ?", [BRONZE_SCHEMA, name]
    ).fetchall()[0][0]
    if found:
        con.execute(f"DROP {other} {BRONZE_SCHEMA}.{quote_ident(name)}")


def _duckdb_type_of(delta_type: object) -> str:
    text = str(getattr(delta_type, "type", delta_type)).lower()
    mapping = {
        "string": "VARCHAR",
        "long": "BIGINT",
        "integer": "INTEGER",
        "short": "SMALLINT",
        "double": "DOUBLE",
        "float": "FLOAT",
        "boolean": "BOOLEAN",
        "date": "DATE",
        "timestamp": "TIMESTAMPTZ",
        "timestamp_ntz": "TIMESTAMP",
    }
    return mapping.get(text, "VARCHAR")


def refresh_bronze_views(workspace: Workspace, sources: list[SourceRef] | None = None) -> dict[str, str]:
    """(Re)create `bronze.<uc>__<source>` in the warehouse for every source; returns view -> SQL. Hold the lock.

    With `dbt.target: spark` the dbt run creates them in Spark, from the statements written here
    (foundation.engine.dbt.spark).
    """
    sources = workspace.sources() if sources is None else sources
    if workspace.settings.dbt.target == SPARK_TARGET:
        return write_bronze_views(workspace, sources)
    path = warehouse_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    views: dict[str, str] = {}
    con = duckdb.connect(str(path))
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {BRONZE_SCHEMA}")
        kind = "TABLE" if is_remote(workspace.lakehouse_root) else "VIEW"  # a copy: see the module's docstring
        for source in sources:
            view = source_view_name(source.usecase, source.name)
            sql = bronze_view_sql(workspace, source, con)
            _drop_other_kind(con, view, kind)
            con.execute(f"CREATE OR REPLACE {kind} {BRONZE_SCHEMA}.{quote_ident(view)} AS {sql}")
            views[view] = sql
    finally:
        con.close()
    return views
