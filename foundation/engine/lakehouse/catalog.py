"""Query the lakehouse from DuckDB: every bronze Delta table as a view, pinned to its current version.

A view reads the Parquet files of the Delta snapshot with DuckDB's own reader (no extension to download,
no Python file handles in Arrow threads). Delta tables written by this framework carry no deletion
vectors, so the snapshot's files are exactly the table. On object storage (s3://, abfss://, gs://) DuckDB has no
reader of its own here: the same files are scanned through pyarrow (foundation/engine/lakehouse/object_store.py).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from foundation.engine.lakehouse.object_store import is_remote, list_delta_tables, register_remote_files
from foundation.engine.sql import quote_ident, quote_literal

BRONZE_SCHEMA = "bronze"


def delta_relation_sql(
    con: duckdb.DuckDBPyConnection,
    uri: str,
    version: int | None = None,
    storage_options: dict[str, str] | None = None,
    empty_name: str = "_empty_delta",
) -> str:
    """A FROM-able SQL expression for a Delta table snapshot."""
    table = DeltaTable(uri, version=version, storage_options=storage_options)
    files = table.file_uris()
    if files and is_remote(files[0]):
        schema = pa.schema(table.schema().to_arrow())
        return quote_ident(register_remote_files(con, files, schema, storage_options))
    if files:
        paths = "[" + ", ".join(quote_literal(f) for f in files) + "]"
        return f"read_parquet({paths}, union_by_name=true)"
    con.register(empty_name, pa.schema(table.schema().to_arrow()).empty_table())
    return quote_ident(empty_name)


def bronze_tables(lakehouse_root: str, storage_options: dict[str, str] | None = None) -> dict[tuple[str, str], str]:
    """(usecase, table) -> uri for every Delta table under <root>/bronze."""
    if is_remote(lakehouse_root):
        return list_delta_tables(f"{lakehouse_root.rstrip('/')}/bronze", storage_options)
    base = Path(lakehouse_root) / "bronze"
    found: dict[tuple[str, str], str] = {}
    if not base.is_dir():
        return found
    for log in sorted(base.glob("*/*/_delta_log")):
        table_dir = log.parent
        found[(table_dir.parent.name, table_dir.name)] = str(table_dir)
    return found


def register_bronze(
    con: duckdb.DuckDBPyConnection, lakehouse_root: str, storage_options: dict[str, str] | None = None
) -> list[str]:
    """Create `bronze.<usecase>__<table>` views for every bronze table; returns the view names."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {BRONZE_SCHEMA}")
    views: list[str] = []
    for (usecase, table), uri in bronze_tables(lakehouse_root, storage_options).items():
        view = f"{usecase}__{table}"
        try:
            relation = delta_relation_sql(con, uri, storage_options=storage_options, empty_name=f"_empty_{view}")
        except TableNotFoundError:
            continue
        con.execute(f"CREATE OR REPLACE VIEW {BRONZE_SCHEMA}.{quote_ident(view)} AS SELECT * FROM {relation}")
        views.append(f"{BRONZE_SCHEMA}.{view}")
    return views
