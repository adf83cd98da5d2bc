"""Staging of non-file extracts (rest_api, sql, html_table).

A non-file extract is first written as Parquet (or NDJSON) files into a per-load folder; the ingest runner then
reads those files exactly like a file source, so typing, quarantine, cursor filtering, load modes, lineage and
atomicity are shared. Each extract type lives in its own module, imported lazily so that a workspace without
REST sources never imports the HTTP stack.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from foundation.engine.connectors.files import SOURCE_FILE_COLUMN
from foundation.engine.sql import quote_ident, quote_literal

# extract.type -> module holding `stage(request) -> StagedExtract`
STAGED_TYPES: dict[str, str] = {
    "rest_api": "foundation.engine.connectors.rest_api",
    "sql": "foundation.engine.connectors.sql",
    "html_table": "foundation.engine.connectors.html_table",
}


class ExtractError(RuntimeError):
    """An extract-side failure: the message names the source, the URL/table and the fix, never a secret value."""


@dataclass(frozen=True)
class StageRequest:
    workspace_root: Path
    source_key: str  # "usecase/source", for messages
    extract: object  # the RestApiExtract | SqlExtract | HtmlTableExtract model
    last_cursor: str | None  # the bronze table's saved cursor (LoadState.cursor); None on a first load
    staging_dir: Path  # an empty folder for this load; the runner deletes it after the load, success or not
    batch_rows: int  # settings.ingest.batch_rows


@dataclass
class StagedExtract:
    paths: list[str]  # Parquet (or NDJSON) files written into staging_dir; [] = nothing new
    origin: str  # lineage value for the source-file column: the URL / database + table, never credentials
    rows: int  # records extracted
    notes: dict[str, int | str] = field(default_factory=dict)  # shown in the load report: pages fetched, retries...
    file_format: str = "parquet"  # or "ndjson"


class _StageModule(Protocol):
    def stage(self, request: StageRequest) -> StagedExtract: ...


def is_staged(extract: object) -> bool:
    """True when this extract is staged (not read in place like a file)."""
    return getattr(extract, "type", None) in STAGED_TYPES


def stage_extract(request: StageRequest) -> StagedExtract:
    """Dispatch on extract.type to `foundation.engine.connectors.<module>.stage(request)`, imported lazily."""
    kind = getattr(request.extract, "type", None)
    module_name = STAGED_TYPES.get(str(kind))
    if module_name is None:
        raise ExtractError(f"{request.source_key}: extract type {kind!r} is not a staged extract")
    module: _StageModule = importlib.import_module(module_name)  # type: ignore[assignment]
    return module.stage(request)


def staged_reader_sql(staged: StagedExtract) -> str:
    """Read staged files; their lineage is the origin (URL, table), not the temporary file.

    JSON is sampled whole (`sample_size=-1`): a value of another type late in the data (a changed type) becomes a
    JSON-typed column whose bad values are quarantined, instead of failing the scan.
    """
    paths = "[" + ", ".join(quote_literal(p) for p in staged.paths) + "]"
    if staged.file_format == "ndjson":
        reader = f"read_json({paths}, format='newline_delimited', union_by_name=true, sample_size=-1)"
    elif staged.file_format == "parquet":
        reader = f"read_parquet({paths}, union_by_name=true)"
    else:
        raise ValueError(f"unknown staged file format {staged.file_format!r}: use parquet or ndjson")
    return f"(SELECT *, {quote_literal(staged.origin)} AS {quote_ident(SOURCE_FILE_COLUMN)} FROM {reader})"
