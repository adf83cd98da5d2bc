"""Move an MLflow store from the embedded SQLite file to PostgreSQL, and its artifacts from the local folder to the
tracking server's object storage (`foundation migrate mlflow`, docs/operations.md#migrations).

MLflow's schema is the same SQLAlchemy schema on both databases, so the move is a copy, table by table in foreign-key
order, into a target freshly created at the same schema revision (MLflow's own `_initialize_tables`), in one
transaction: a failure leaves the target empty. Ids are kept, so the registry's versions, the `champion` alias, runs,
metrics and tags are the same rows; PostgreSQL's id sequences are then moved past the copied ids.

Artifacts: every file under the old `mlflow.artifact_root` is copied to the server's `--artifacts-destination`
(`MLFLOW_ARTIFACTS_DESTINATION`, e.g. s3://bucket/mlflow-artifacts) at the same relative path, and every location in
the store that pointed into the folder is rewritten to `mlflow-artifacts:/<relative path>`, which the shipped server
(infra/mlflow, `--serve-artifacts`) resolves against that destination: clients need no object-store credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from foundation.engine.lakehouse.object_store import arrow_filesystem, filesystem_path, is_remote

PROXIED = "mlflow-artifacts:"


class StoreMigrationError(RuntimeError):
    """The migration cannot start or could not finish (names the setting or variable to fix; never a password)."""


@dataclass
class StoreMigration:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    artifact_files: int = 0
    artifacts_to: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "artifact_files": self.artifact_files, "artifacts_to": self.artifacts_to}


def location_rewriter(artifact_root: str | None) -> Any:
    """Pure: a function mapping a stored value pointing into `artifact_root` (a path or a file:// URI) to the
    proxied `mlflow-artifacts:/...` form; any other value is returned as it is."""
    if not artifact_root:
        return lambda value: value
    root = artifact_root.rstrip("/")
    prefixes = (f"file://{root}", root)

    def rewrite(value: Any) -> Any:
        if isinstance(value, str):
            for prefix in prefixes:
                if value == prefix or value.startswith(prefix + "/"):
                    return PROXIED + (value[len(prefix) :] or "/")
        return value

    return rewrite


def _engine(uri: str, role: str) -> Any:
    from mlflow.store.db.utils import create_sqlalchemy_engine  # lazy: SQLAlchemy and MLflow's store (1 s)

    try:
        return create_sqlalchemy_engine(uri)
    except Exception as exc:
        raise StoreMigrationError(f"{role}: cannot open the database ({type(exc).__name__})") from None


def copy_tables(source_uri: str, target_uri: str, rewrite: Any) -> dict[str, int]:
    """Copy every MLflow table from `source_uri` into `target_uri` (created here; refused when it holds anything)."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables, _is_empty_database, _verify_schema

    source, target = _engine(source_uri, "the SQLite store"), _engine(target_uri, "MLFLOW_BACKEND_STORE_URI")
    try:
        _verify_schema(source)
    except Exception as exc:
        raise StoreMigrationError(f"the SQLite store is not at MLflow's current schema: {exc}") from None
    try:
        empty = _is_empty_database(target)
    except Exception as exc:
        raise StoreMigrationError(f"MLFLOW_BACKEND_STORE_URI: cannot connect ({type(exc).__name__})") from None
    if not empty:
        raise StoreMigrationError("MLFLOW_BACKEND_STORE_URI: the target database is not empty; give a new database")
    _initialize_tables(target)
    metadata, source_metadata = sqlalchemy.MetaData(), sqlalchemy.MetaData()
    metadata.reflect(target)
    source_metadata.reflect(source)
    tables = [t for t in metadata.sorted_tables if not t.name.startswith("alembic_")]
    rows: dict[str, int] = {}
    with source.connect() as read, target.begin() as write:
        for table in reversed(tables):
            write.execute(table.delete())  # what the schema's creation seeded (the Default experiment)
        for table in tables:
            columns = [c.name for c in table.columns if c.name in source_metadata.tables[table.name].columns]
            selected = sqlalchemy.select(*(source_metadata.tables[table.name].c[c] for c in columns))
            batch = [{k: rewrite(v) for k, v in row.items()} for row in read.execute(selected).mappings()]
            if batch:
                write.execute(table.insert(), batch)
            rows[table.name] = len(batch)
        if target.dialect.name == "postgresql":
            _move_sequences(write, tables)
    return rows


def _move_sequences(connection: Any, tables: list[Any]) -> None:
    """PostgreSQL hands out ids from sequences: move each past the largest id copied."""
    import sqlalchemy

    for table in tables:
        for column in table.primary_key.columns:
            if not isinstance(column.type, sqlalchemy.Integer):
                continue
            connection.execute(
                sqlalchemy.text(
                    f'SELECT setval(seq, (SELECT coalesce(max("{column.name}"), 1) FROM "{table.name}")) '
                    "FROM pg_get_serial_sequence(:t, :c) AS seq WHERE seq IS NOT NULL"
                ),
                {"t": table.name, "c": column.name},
            )


def copy_artifacts(artifact_root: str, destination: str, storage_options: Mapping[str, str] | None = None) -> int:
    """Copy the folder's files to `destination` (object storage or a folder), keeping relative paths; returns the
    number of files."""
    if not os.path.isdir(artifact_root):
        return 0
    target = arrow_filesystem(destination, storage_options)
    base = filesystem_path(destination) if is_remote(destination) else os.path.abspath(destination)
    selector = pafs.FileSelector(os.path.abspath(artifact_root), recursive=True)
    files = [f for f in pafs.LocalFileSystem().get_file_info(selector) if f.type == pafs.FileType.File]
    try:
        pafs.copy_files(os.path.abspath(artifact_root), base, destination_filesystem=target)
    except OSError as exc:
        raise StoreMigrationError(f"MLFLOW_ARTIFACTS_DESTINATION: cannot write {destination}: {exc}") from None
    return len(files)


def migrate_store(
    source_uri: str,
    target_uri: str,
    artifact_root: str | None,
    artifacts_to: str | None,
    storage_options: Mapping[str, str] | None = None,
) -> StoreMigration:
    """The whole move: artifacts first (an interrupted run leaves the target database empty and can start again),
    then the tables in one transaction."""
    files = copy_artifacts(artifact_root, artifacts_to, storage_options) if artifact_root and artifacts_to else 0
    rows = copy_tables(source_uri, target_uri, location_rewriter(artifact_root if artifacts_to else None))
    return StoreMigration(rows=rows, artifact_files=files, artifacts_to=artifacts_to)
