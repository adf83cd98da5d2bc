"""`sql` extracts: a table or a query of SQLite or PostgreSQL, streamed through ADBC into staged Parquet.

Why ADBC (adbc-driver-sqlite / adbc-driver-postgresql, Apache Arrow's own drivers): results arrive as Arrow record
batches straight from the driver (PostgreSQL's binary COPY protocol; SQLite's C API), so there is no Python object
per value, memory is bounded by one batch, and the types the database reports drive typing in the ingest plan.
bench/sql_ingest.py measures it against the alternatives.

Incremental loads push the last landed cursor into the query: `WHERE <cursor_column> > <last value>`, the value
always sent as a bound parameter. The pushdown only narrows what is read; the ingest plan still drops rows at or
below the cursor exactly (with the declared types), so a loose pushdown (SQLite compares text) can never lose rows.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.parquet as pq

from foundation.core.extras import missing_extra
from foundation.engine.connectors.staging import ExtractError, StagedExtract, StageRequest
from foundation.specs.secrets import MissingSecretError, references
from foundation.specs.secrets import resolve as resolve_env
from foundation.specs.source import SqlExtract

CURSOR_SETTING = "foundation.last_cursor"
UNREACHABLE_MESSAGES = ("connection refused", "could not translate host", "timeout expired", "failed to open")
SQLITE_MISMATCH_RE = re.compile(r"Type mismatch in column (\d+)")
# PostgreSQL type names we cast the pushed-down cursor to; any other cursor type is filtered by the plan only.
PG_CURSOR_TYPES = {
    "int2", "int4", "int8", "numeric", "float4", "float8", "date", "timestamp", "timestamptz", "text", "varchar",
}  # fmt: skip


@dataclass(frozen=True)
class Database:
    kind: str  # "sqlite" | "postgresql"
    uri: str  # what the driver opens (holds the password: never shown)
    display: str  # the URL without its password, for messages and lineage
    secrets: tuple[str, ...]  # values to scrub from any driver message


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***` (user, host, port and database stay: they help)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _scrub(message: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message.strip()


def parse_database_url(url: str, workspace_root: Path, connect_timeout: int = 10) -> Database:
    """What to open for a resolved connection URL; raises ValueError on an unsupported one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db
        raw = unquote(url.split("://", 1)[1])
        if not raw.startswith("/"):
            raise ValueError(f"{url!r}: a SQLite URL has three slashes: sqlite:///path/relative/to/workspace.db")
        raw = raw[1:]
        path = Path(raw) if raw.startswith("/") else workspace_root / raw
        # Read-only: a wrong path must not create an empty database, and ingestion never writes to a source.
        return Database("sqlite", f"file:{quote(str(path))}?mode=ro", f"sqlite:///{raw}", ())
    if scheme in ("postgresql", "postgres"):
        query = dict(parse_qsl(parts.query))
        query.setdefault("connect_timeout", str(connect_timeout))
        uri = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))
        password = parts.password or ""
        return Database("postgresql", uri, redact_url(url), (password, unquote(password)))
    raise ValueError(
        f"unsupported database URL scheme {parts.scheme!r} in {redact_url(url)!r}: "
        "use postgresql://user:password@host:5432/db or sqlite:///path.db"
    )


def base_query(extract: SqlExtract) -> str:
    """The SELECT of the table or of the user's query, as a subquery-ready string."""
    if extract.table is not None:
        # Unquoted on purpose: the database's own case rules apply; the spec only allows plain identifiers.
        return f"SELECT * FROM {extract.table}"
    assert extract.query is not None
    return extract.query.strip().rstrip(";").strip()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def select_sql(base: str, text_columns: list[str], names: list[str], where: str | None) -> str:
    """Wrap the base query: columns cast to text (SQLite's mixed-type columns) and the cursor predicate."""
    if text_columns:
        columns = ", ".join(
            f"CAST({_quote(n)} AS TEXT) AS {_quote(n)}" if n in text_columns else _quote(n) for n in names
        )
    else:
        columns = "*"
    sql = f"SELECT {columns} FROM ({base}) AS _foundation_q"
    return f"{sql} WHERE {where}" if where else sql


def sqlite_cursor_value(last_cursor: str) -> int | float | str:
    """The last cursor as SQLite compares it best: a number when it is one, else ISO text with a space separator.

    SQLite stores timestamps as text, usually 'YYYY-MM-DD HH:MM:SS'; the saved cursor is ISO with a 'T'. With a space,
    values in either form at or after the cursor compare greater or equal, so nothing newer is skipped.
    """
    for kind in (int, float):
        try:
            return kind(last_cursor)
        except ValueError:
            pass
    if re.match(r"^\d{4}-\d{2}-\d{2}T", last_cursor):
        return last_cursor.replace("T", " ", 1)
    return last_cursor


def pg_cursor_type(schema: pa.Schema, column: str) -> str | None:
    """The PostgreSQL type name of the cursor column, from the driver's field metadata (None: no pushdown)."""
    if column not in schema.names:
        return None
    metadata = schema.field(column).metadata or {}
    kind = metadata.get(b"POSTGRESQL:type", b"").decode()
    return kind if kind in PG_CURSOR_TYPES else None


def _valid_pg_value(kind: str, value: str) -> bool:
    """Whether the saved cursor can be cast to the column's type (else the plan alone filters)."""
    try:
        if kind in ("int2", "int4", "int8"):
            int(value)
        elif kind in ("numeric", "float4", "float8"):
            Decimal(value)
        elif kind == "date":
            date.fromisoformat(value[:10])
        elif kind in ("timestamp", "timestamptz"):
            datetime.fromisoformat(value)
    except (ValueError, InvalidOperation):
        return False
    return True


class _Source:
    """One open database connection for one stage() call."""

    def __init__(self, request: StageRequest, extract: SqlExtract, database: Database) -> None:
        self.request, self.extract, self.database = request, extract, database
        self.variables = sorted(references(extract.url))
        self.con: Any = None

    # -- errors ----------------------------------------------------------------------------------------------------
    def _where(self) -> str:
        what = f"table {self.extract.table}" if self.extract.table else "its query"
        return f"{self.request.source_key}: {what} at {self.database.display}"

    def _url_hint(self) -> str:
        return f"the URL in ${{{self.variables[0]}}}" if self.variables else "extract.url"

    def error(self, exc: BaseException, stage: str) -> ExtractError:
        message = _scrub(str(exc), self.database.secrets)
        lowered = message.lower()
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            fix = f"the user name or password is wrong: fix them in {self._url_hint()}"
        elif "database" in lowered and "does not exist" in lowered:
            fix = f"the database does not exist: fix its name in {self._url_hint()}, or create it"
        elif stage == "connect" or any(
            s in lowered
            for s in ("connection refused", "could not translate host", "timeout expired", "failed to open")
        ):
            fix = (
                f"cannot reach the database: check that it is running and that host, port (or file path) in "
                f"{self._url_hint()} are right"
            )
        elif "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
            tables = self._tables()
            listing = f"; the database has: {', '.join(tables)}" if tables else "; the database has no tables"
            fix = f"the table does not exist: fix extract.table or extract.query{listing}"
        else:
            fix = "the query failed: fix extract.query (or extract.table) so that the database accepts it"
        return ExtractError(f"{self._where()}: {fix}. Database said: {message.splitlines()[0] if message else '?'}")

    def _tables(self) -> list[str]:
        sql = (
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY 1"
            if self.database.kind == "sqlite"
            else "SELECT CASE WHEN table_schema = 'public' THEN table_name ELSE table_schema || '.' || table_name END "
            "FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
        try:
            if self.database.kind == "postgresql":
                self.con.rollback()  # the failed query aborted the transaction
            with self.con.cursor() as cur:
                cur.execute(sql)
                return [str(row[0]) for row in cur.fetchall()[:50]]
        except Exception:
            return []

    # -- connection ------------------------------------------------------------------------------------------------
    def connect(self) -> None:
        try:
            if self.database.kind == "sqlite":
                import adbc_driver_sqlite.dbapi as sqlite_dbapi  # lazy: the driver of this database kind only

                path = unquote(self.database.uri[len("file:") :].split("?", 1)[0])
                if not os.path.isfile(path):
                    raise ExtractError(
                        f"{self._where()}: the SQLite file {path} does not exist: fix the path in {self._url_hint()} "
                        "(sqlite:///relative/to/workspace.db or sqlite:////absolute/path.db)"
                    )
                self.con = sqlite_dbapi.connect(self.database.uri)
            else:
                missing_driver = missing_extra(
                    "adbc_driver_postgresql", "postgres", f"{self._where()}: a PostgreSQL source"
                )
                if missing_driver is not None:
                    raise ExtractError(str(missing_driver))
                import adbc_driver_postgresql.dbapi as pg_dbapi  # lazy: the optional postgres extra

                self.con = pg_dbapi.connect(self.database.uri)
        except ExtractError:
            raise
        except Exception as exc:
            raise self.error(exc, "connect") from None

    def close(self) -> None:
        if self.con is not None:
            with contextlib.suppress(Exception):  # closing after a failure must not hide that failure
                self.con.close()

    # -- reading ---------------------------------------------------------------------------------------------------
    def _pg_pushdown(self, base: str) -> str | None:
        """The cursor predicate for PostgreSQL; the value goes in as a bound parameter of set_config."""
        column, last = self.extract.cursor_column, self.request.last_cursor
        if not column or last is None:
            return None
        with self.con.cursor() as cur:
            cur.execute(f"SELECT * FROM ({base}) AS _foundation_q LIMIT 0")
            schema = cur.fetch_arrow_table().schema
        kind = pg_cursor_type(schema, column)
        if kind is None or not _valid_pg_value(kind, last):
            return None
        if kind in ("text", "varchar"):
            last = str(sqlite_cursor_value(last))  # ISO text with a space: never above a newer value, as for SQLite
        with self.con.cursor() as cur:
            # COPY (the streaming path) takes no parameters: bind the value into a session setting, read it back.
            cur.execute("SELECT set_config($1, $2, false)", (CURSOR_SETTING, last))
            cur.fetchall()
        return f"{_quote(column)} > CAST(current_setting('{CURSOR_SETTING}') AS {_quote(kind)})"

    def stream_to(self, target: Path) -> tuple[int, dict[str, int | str]]:
        """Run the query, writing every batch into one Parquet file; (rows, notes)."""
        base = base_query(self.extract)
        params: tuple[object, ...] = ()
        where: str | None = None
        if self.database.kind == "postgresql":
            where = self._pg_pushdown(base)
        elif self.extract.cursor_column and self.request.last_cursor is not None:
            where = f"{_quote(self.extract.cursor_column)} > ?"
            params = (sqlite_cursor_value(self.request.last_cursor),)
        text_columns: list[str] = []
        names: list[str] = []  # filled by _write as soon as the driver knows the columns
        # SQLite columns may mix types (a REAL column holding 'N/A'); the driver types each column from its first
        # batch and fails on a later mismatch. Such a column is then read again as text, so that the plan flags
        # the bad values (declared type) instead of the whole load failing.
        while True:
            sql = select_sql(base, text_columns, names, where)
            try:
                rows, batches = self._write(sql, params, target, names)
                break
            except ExtractError:
                raise
            except Exception as exc:
                mismatch = SQLITE_MISMATCH_RE.search(str(exc))
                if self.database.kind == "sqlite" and mismatch and int(mismatch.group(1)) < len(names):
                    column = names[int(mismatch.group(1))]
                    if column not in text_columns:
                        text_columns.append(column)
                        continue
                raise self.error(exc, "query") from None
        notes: dict[str, int | str] = {"batches": batches, "pushdown": "yes" if where else "no"}
        if text_columns:
            notes["read_as_text"] = ", ".join(text_columns)
        return rows, notes

    def _write(self, sql: str, params: tuple[object, ...], target: Path, names: list[str]) -> tuple[int, int]:
        """Stream the query into `target`; (rows, batches). `names` receives the column names."""
        rows = batches = 0
        target.unlink(missing_ok=True)
        writer: pq.ParquetWriter | None = None
        with self.con.cursor() as cur:
            if self.database.kind == "sqlite":
                cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(self.request.batch_rows)})
            cur.execute(sql, params or None)
            reader = cur.fetch_record_batch()
            names[:] = reader.schema.names
            schema = _storable(reader.schema)
            try:
                for batch in reader:
                    if batch.num_rows == 0:
                        continue
                    if writer is None:
                        writer = pq.ParquetWriter(target, schema, compression="lz4")  # fast: read once, then deleted
                    writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
                    rows += batch.num_rows
                    batches += 1
            finally:
                reader.close()
                if writer is not None:
                    writer.close()
        return rows, batches


def _storable(schema: pa.Schema) -> pa.Schema:
    """The schema without the driver's field metadata (kept out of the staged files)."""
    return pa.schema([pa.field(f.name, f.type, f.nullable) for f in schema])


def stage(request: StageRequest) -> StagedExtract:
    """Read the table/query (only rows past the last cursor when incremental) into one staged Parquet file."""
    extract = request.extract
    if not isinstance(extract, SqlExtract):
        raise TypeError(f"not a sql extract: {extract!r}")
    try:
        url = resolve_env(extract.url, f"{request.source_key} extract.url")
    except MissingSecretError as exc:
        raise ExtractError(f"{request.source_key}: {exc}") from None
    try:
        database = parse_database_url(url, request.workspace_root, extract.connect_timeout)
    except ValueError as exc:
        raise ExtractError(f"{request.source_key}: {exc}") from None
    origin = f"{database.display}#{extract.table or 'query'}"
    source = _Source(request, extract, database)
    target = request.staging_dir / "sql-000.parquet"
    source.connect()
    try:
        rows, notes = source.stream_to(target)
    finally:
        source.close()
    if rows == 0:
        target.unlink(missing_ok=True)
        return StagedExtract(paths=[], origin=origin, rows=0, notes=notes)
    return StagedExtract(paths=[str(target)], origin=origin, rows=rows, notes=notes)
