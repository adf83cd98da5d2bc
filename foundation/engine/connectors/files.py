"""File connectors (csv, parquet, json/ndjson, delta) on DuckDB's own readers.

DuckDB sniffs, parses, decompresses (`.gz`) and streams; we only build the reader call. CSV rows that
cannot be parsed (ragged rows, values that do not fit an inferred type) land in DuckDB's reject tables,
from which ingestion quarantines them with their line and reason.
"""

from __future__ import annotations

import glob
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb

from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.sql import quote_ident, quote_literal
from foundation.specs.secrets import resolve as resolve_env
from foundation.specs.source import CsvExtract, DeltaExtract, JsonExtract, ParquetExtract

FileExtract = CsvExtract | ParquetExtract | JsonExtract
RAW_RELATION = "raw_source"
SOURCE_FILE_COLUMN = "_source_file"


class NoFilesMatchedError(FileNotFoundError):
    pass


class EmptyFileError(ValueError):
    """Every file to read is empty: no header to match the declared columns against, and no rows."""


BLANK_PROBE_BYTES = 4096  # a file this small is read to see whether it holds anything but blanks


@dataclass(frozen=True)
class SourceFile:
    path: str
    size: int
    mtime_ns: int

    @property
    def fingerprint(self) -> list[int]:
        return [self.size, self.mtime_ns]


def match_pattern(workspace_root: Path, declared: str) -> tuple[str, list[str]]:
    """A declared path or glob (`${VAR}` resolved, relative to the workspace): where it looks, what it matches."""
    pattern = resolve_env(declared, "extract.path")  # e.g. path: ${LANDING_DIR}/orders/*.csv
    absolute = pattern if os.path.isabs(pattern) else str(workspace_root / pattern)
    return absolute, sorted(p for p in glob.glob(absolute, recursive=True) if os.path.isfile(p))


def resolve_files(workspace_root: Path, extract: FileExtract) -> list[SourceFile]:
    """Every file the extract's paths/globs match, sorted; raises when a pattern matches nothing."""
    files: dict[str, SourceFile] = {}
    for declared in extract.paths:
        absolute, matched = match_pattern(workspace_root, declared)
        if not matched:
            raise NoFilesMatchedError(
                f"extract.path {declared!r} matched no file (looked for {absolute}); "
                "check the path, or land the files first"
            )
        for path in matched:
            stat = os.stat(path)
            files[path] = SourceFile(path, stat.st_size, stat.st_mtime_ns)
    return [files[p] for p in sorted(files)]


def is_blank(path: str, size: int) -> bool:
    """Whether a file holds nothing but whitespace (0 bytes, blank lines, an empty .gz): DuckDB then reads one
    column named `column0`, which says nothing about the cause."""
    if size > BLANK_PROBE_BYTES:
        return False
    with open(path, "rb") as raw:
        content = raw.read()
    if path.endswith(".gz") and content:
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError):
            return False  # not gzip after all: DuckDB will say what it is
    return not content.removeprefix(b"\xef\xbb\xbf").strip()


def check_not_all_blank(files: list[SourceFile], workspace_root: Path) -> None:
    """Raise EmptyFileError, naming the files and what to do, when every file to read is blank (one that is blank
    beside others is read as no rows)."""
    if not files or not all(is_blank(f.path, f.size) for f in files):
        return
    names = [_shown(f.path, workspace_root) for f in files]
    subject = f"{names[0]}: the file is" if len(names) == 1 else f"{', '.join(names)}: the files are"
    raise EmptyFileError(
        f"{subject} empty (no header, no rows), so there is nothing to load and no column to match the declared "
        "ones against. If its writer has not finished, run again once it has; if the export is empty on purpose, "
        "delete the file or have it write the header line."
    )


def _shown(path: str, workspace_root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(workspace_root.resolve()))
    except ValueError:
        return path


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(quote_literal(v) for v in values) + "]"


def reader_sql(
    extract: FileExtract, files: list[str], varchar_columns: list[str], column_types: dict[str, str] | None = None
) -> str:
    """The DuckDB table function reading `files`; `varchar_columns` are read as text and typed later, CSV columns in
    `column_types` (raw name -> DuckDB type) are typed by the reader (a value that does not parse is a reject)."""
    paths = _sql_list(files)
    if isinstance(extract, CsvExtract):
        options = [
            f"header={str(extract.header).lower()}",
            f"delim={quote_literal(extract.delimiter)}",
            f"quote={quote_literal(extract.quote)}",
            f"escape={quote_literal(extract.escape)}",
            f"skip={extract.skip_rows}",
            f"nullstr={_sql_list(extract.null_values)}",
            f"encoding={quote_literal(extract.encoding)}",
            f"filename={quote_literal(SOURCE_FILE_COLUMN)}",
            "store_rejects=true",
        ]
        if extract.column_names:
            options.append(f"names={_sql_list(extract.column_names)}")
        declared = {**dict.fromkeys(varchar_columns, "VARCHAR"), **(column_types or {})}
        if declared:
            types = ", ".join(f"{quote_literal(c)}: {quote_literal(t)}" for c, t in declared.items())
            options.append(f"types={{{types}}}")
        return f"read_csv({paths}, {', '.join(options)})"
    if isinstance(extract, ParquetExtract):
        return f"read_parquet({paths}, filename={quote_literal(SOURCE_FILE_COLUMN)}, union_by_name=true)"
    if isinstance(extract, JsonExtract):
        fmt = "newline_delimited" if extract.type == "ndjson" else "auto"
        return (
            f"read_json({paths}, format={quote_literal(fmt)}, filename={quote_literal(SOURCE_FILE_COLUMN)}, "
            "union_by_name=true)"
        )
    raise TypeError(f"not a file extract: {extract!r}")


def delta_reader_sql(con: duckdb.DuckDBPyConnection, uri: str, extract: DeltaExtract) -> str:
    """Read a Delta table snapshot with DuckDB's Parquet reader (DuckDB extensions cannot be downloaded here)."""
    relation = delta_relation_sql(con, uri, version=extract.version)
    return f"(SELECT *, {quote_literal(uri)} AS {quote_ident(SOURCE_FILE_COLUMN)} FROM {relation})"


def csv_rejects(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    """Rows DuckDB's CSV reader rejected, with file, line, raw text and reason: one per line, with all its errors.

    DuckDB records one reject per error, and a line may have several (two missing columns, two bad values). A line
    that is not valid UTF-8 is shown with `?` for its bad bytes, so its exact bytes are read back from the file
    (`raw_bytes`; None for the other lines, whose text is exact).
    """
    try:
        rows = con.execute(
            """
            SELECT s.file_path, e.line,
                   string_agg(DISTINCT CAST(e.error_type AS VARCHAR), ', ' ORDER BY CAST(e.error_type AS VARCHAR)),
                   any_value(e.csv_line),
                   string_agg(e.error_message, '; ' ORDER BY e.column_idx, e.error_message),
                   string_agg(DISTINCT e.column_name, ', '),
                   min(e.line_byte_position)
            FROM reject_errors e JOIN reject_scans s USING (scan_id, file_id)
            -- only the last scan: a load may scan the files twice (e.g. for the cursor), rejects accumulate
            WHERE e.scan_id = (SELECT max(scan_id) FROM reject_scans)
            GROUP BY s.file_path, e.line
            ORDER BY s.file_path, e.line
            """
        ).fetchall()
    except duckdb.CatalogException:
        return []
    keys = ("file", "line", "error_type", "raw_line", "message", "column", "line_byte_position")
    rejects = [dict(zip(keys, row, strict=True)) for row in rows]
    by_file: dict[str, list[dict[str, object]]] = {}
    for reject in rejects:
        reject["raw_bytes"] = None
        if INVALID_ENCODING in str(reject["error_type"]) and reject["line_byte_position"] is not None:
            by_file.setdefault(str(reject["file"]), []).append(reject)
    for path, invalid in by_file.items():
        with _open_binary(path) as raw:
            for reject in sorted(invalid, key=lambda r: int(r["line_byte_position"])):  # type: ignore[arg-type]
                reject["raw_bytes"] = record_bytes(raw, int(reject["line_byte_position"]), str(reject["raw_line"]))  # type: ignore[arg-type]
    return rejects


INVALID_ENCODING = "INVALID ENCODING"  # DuckDB's reject error type for bytes that are not in the declared encoding


def _open_binary(path: str) -> BinaryIO:
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def record_bytes(raw: BinaryIO, line_byte_position: int, text: str) -> bytes | None:
    """The exact bytes of the rejected record DuckDB places at `line_byte_position`, without its line ending.

    DuckDB's position is the record's first byte, or the one after it (it differs with the line endings): the
    record starts where a line starts. `text` is DuckDB's copy, to count the lines a quoted line break spans.
    None when the position does not fall on a line start, or the bytes found are valid UTF-8 (not this record).
    """
    start = None
    raw.seek(max(0, line_byte_position - 2))
    before = raw.read(2)[-2:] if line_byte_position >= 2 else b"\n" + raw.read(1)
    if before[-1:] == b"\n":
        start = line_byte_position
    elif before[:1] == b"\n":
        start = line_byte_position - 1
    if start is None:
        return None
    raw.seek(start)
    record = b"".join(raw.readline() for _ in range(text.lstrip("\r\n").count("\n") + 1))
    record = record.removesuffix(b"\n").removesuffix(b"\r")
    try:
        record.decode("utf-8")
    except UnicodeDecodeError:
        return record
    return None
