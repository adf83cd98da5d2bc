"""Profiling for Sprint 0: what a source's data looks like, and the `checks:` it suggests.

DuckDB's SUMMARIZE does the statistics (type, min/max, approximate distinct count, null %); we add the top
values and the dominant shape of text values (letters -> A, digits -> 9), then turn them into rules a data
engineer reviews. The profile reads the files through the source's own connector and types them with its column
declarations (`foundation.engine.connectors.landing_sql`), as a load does; a staged extract (rest_api, sql,
html_table) is first staged whole into a temporary folder of the workspace state, and its staged files are profiled.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.connectors.files import delta_reader_sql, reader_sql, resolve_files
from foundation.engine.connectors.landing_sql import (
    LoadContext,
    compile_landing_sql,
    declared_raw_text_columns,
    plan_columns,
)
from foundation.engine.connectors.staging import ExtractError, StageRequest, is_staged, stage_extract, staged_reader_sql
from foundation.engine.sql import quote_ident
from foundation.specs.source import CsvExtract, DeltaExtract

ACCEPTED_VALUES_MAX = 12  # at most this many distinct values suggests an accepted_values rule
TOP_VALUES = ACCEPTED_VALUES_MAX  # so that a short list of accepted values is known in full
NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "UBIGINT", "UINTEGER")


@dataclass
class ColumnProfile:
    name: str
    type: str
    rows: int
    null_percent: float
    distinct: int
    min: str | None
    max: str | None
    top_values: list[tuple[str, int]] = field(default_factory=list)
    pattern: str | None = None  # the one shape every non-null value has, if any
    pattern_share: float = 0.0

    @property
    def numeric(self) -> bool:
        return self.type.upper().startswith(NUMERIC)


@dataclass
class SourceProfile:
    source: str
    rows: int
    columns: list[ColumnProfile]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shape_regex(shape: str) -> str:
    """`AAA-9999` -> `^[A-Z]{3}-\\d{4}$` (letters keep their case class)."""
    out = ""
    for match in re.finditer(r"(A+|a+|9+|[^Aa9]+)", shape):
        run = match.group(0)
        if run[0] == "A":
            out += "[A-Z]" + (f"{{{len(run)}}}" if len(run) > 1 else "")
        elif run[0] == "a":
            out += "[a-z]" + (f"{{{len(run)}}}" if len(run) > 1 else "")
        elif run[0] == "9":
            out += r"\d" + (f"{{{len(run)}}}" if len(run) > 1 else "")
        else:
            out += re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", run)  # escape regex metacharacters only
    return f"^{out}$"


@contextmanager
def staged_relation(workspace: Workspace, source: SourceRef) -> Iterator[str]:
    """Stage a rest_api/sql/html_table extract whole (no cursor: the profile sees every record) and yield the SQL
    relation over its staged files, read as the runner reads them; the staging folder goes on exit."""
    parent = workspace.state_dir / "staging"
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"profile-{source.usecase}__{source.name}-", dir=parent) as folder:
        request = StageRequest(
            workspace_root=workspace.root,
            source_key=source.key,
            extract=source.spec.extract,
            last_cursor=None,
            staging_dir=Path(folder),
            batch_rows=workspace.settings.ingest.batch_rows,
        )
        staged = stage_extract(request)
        if not staged.paths:
            raise ExtractError(
                f"{source.key}: {staged.origin} returned no records, so there is nothing to profile; "
                "check the extract (table, query, path, data_selector) against the data"
            )
        yield staged_reader_sql(staged)


def profile_source(workspace: Workspace, source: SourceRef, sample_rows: int | None = None) -> SourceProfile:
    """Profile a source's data, typed by its YAML; raises ExtractError when a staged extract cannot be fetched."""
    spec = source.spec
    workspace.refuse_paths_outside_roots(source)  # it reads the data as a load would
    con = duckdb.connect()
    try:
        if is_staged(spec.extract):
            with staged_relation(workspace, source) as relation:
                return _profile_relation(con, source, relation, sample_rows)
        if isinstance(spec.extract, DeltaExtract):
            relation = delta_reader_sql(con, workspace.resolve(spec.extract.path), spec.extract)
        else:
            files = [f.path for f in resolve_files(workspace.root, spec.extract)]
            text = declared_raw_text_columns(spec) if isinstance(spec.extract, CsvExtract) else []
            relation = reader_sql(spec.extract, files, text)
        return _profile_relation(con, source, relation, sample_rows)
    finally:
        con.close()


def _profile_relation(
    con: duckdb.DuckDBPyConnection, source: SourceRef, relation: str, sample_rows: int | None
) -> SourceProfile:
    """Type the relation with the source's column plans (as a load would), keep the valid rows, summarise them."""
    spec = source.spec
    raw_schema = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    plans = plan_columns(spec, raw_schema)
    context = LoadContext(load_id="profile", loaded_at=datetime.now(UTC))
    landing = compile_landing_sql(spec, plans, relation, context)
    limit = f" LIMIT {int(sample_rows)}" if sample_rows else ""
    names = ", ".join(quote_ident(p.name) for p in plans)
    con.execute(f"CREATE TEMP TABLE profiled AS SELECT {names} FROM ({landing}) WHERE _status = 'ok'{limit}")
    rows = con.execute("SELECT count(*) FROM profiled").fetchall()[0][0]
    summary = con.execute("SUMMARIZE profiled").fetchall()
    columns = []
    for name, kind, low, high, distinct, *_, count, null_pct in summary:
        column = ColumnProfile(name, kind, count, float(null_pct or 0), int(distinct or 0), low, high)
        ident = quote_ident(name)
        column.top_values = [
            (str(v), int(n))
            for v, n in con.execute(
                f"SELECT {ident}, count(*) AS n FROM profiled WHERE {ident} IS NOT NULL "
                f"GROUP BY ALL ORDER BY n DESC, 1 LIMIT {TOP_VALUES}"
            ).fetchall()
        ]
        if kind.upper() == "VARCHAR" and rows:
            shapes = con.execute(
                f"SELECT regexp_replace(regexp_replace(regexp_replace({ident}, '[A-Z]', 'A', 'g'), "
                f"'[a-z]', 'a', 'g'), '[0-9]', '9', 'g') AS shape, count(*) AS n FROM profiled "
                f"WHERE {ident} IS NOT NULL GROUP BY ALL ORDER BY n DESC LIMIT 1"
            ).fetchall()
            non_null = rows - round(rows * column.null_percent / 100)
            if shapes and non_null:
                column.pattern, column.pattern_share = shapes[0][0], shapes[0][1] / non_null
        columns.append(column)
    return SourceProfile(source.key, rows, columns)


def _bounds(low: float, high: float) -> list[float | int]:
    """Observed range widened by 10% on each side, rounded to the range's order of magnitude; >= 0 stays >= 0."""
    spread = (high - low) or abs(high) or 1.0
    step = 10 ** math.floor(math.log10(spread * 0.1)) if spread * 0.1 > 0 else 1
    lower = math.floor((low - spread * 0.1) / step) * step
    upper = math.ceil((high + spread * 0.1) / step) * step
    if low >= 0:
        lower = max(lower, 0)
    return [int(v) if float(v).is_integer() else round(v, 6) for v in (lower, upper)]


def _null_limit(null_percent: float) -> float | None:
    """Twice the observed share of nulls, at most halfway to 100% (a rule must stay in 0-100 and able to fail),
    rounded up to 0.1; None for an empty column, where no limit below 100% would pass."""
    if null_percent >= 100:
        return None
    return math.ceil(min(null_percent * 2, (null_percent + 100) / 2) * 10) / 10


INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")


def suggest_checks(profile: SourceProfile) -> dict[str, Any]:
    """`{"columns": {name: {"required": bool, "checks": [...]}}, "checks": [...]}` for a data engineer to review."""
    columns: dict[str, dict[str, Any]] = {}
    table: list[dict[str, Any]] = []
    for column in profile.columns:
        checks: list[dict[str, Any]] = []
        suggestion: dict[str, Any] = {"required": column.null_percent == 0 and column.rows > 0}
        if column.numeric and column.min is not None and column.max is not None:
            low, high = _bounds(float(column.min), float(column.max))
            if column.type.upper() in INTEGER_TYPES:  # whole bounds for whole numbers
                low, high = math.floor(low), math.ceil(high)
            checks.append({"between": [low, high]})
        elif column.type.upper() == "VARCHAR" and column.top_values:
            if 0 < column.distinct <= ACCEPTED_VALUES_MAX and column.rows >= 4 * column.distinct:
                checks.append({"accepted_values": sorted(v for v, _ in column.top_values)})
            elif column.pattern and column.pattern_share == 1.0 and re.search(r"[A9a]", column.pattern):
                checks.append({"regex": _shape_regex(column.pattern)})
        limit = _null_limit(column.null_percent) if column.null_percent > 0 else None
        if limit is not None:
            checks.append({"max_null_percent": limit})
        if (
            column.rows
            and column.distinct >= column.rows * 0.99
            and not column.type.upper().startswith(("DOUBLE", "FLOAT"))
        ):
            table.append({"unique": [column.name]})
        if column.type.upper().startswith("TIMESTAMP") and column.max:
            table.append({"freshness": {"column": column.name, "warn_after": "1d", "error_after": "3d"}})
        suggestion["checks"] = checks
        columns[column.name] = suggestion
    if profile.rows:
        table.append({"completeness": {"min_rows": max(1, profile.rows // 2)}})
    return {"columns": columns, "checks": table}


def write_suggestions(path: Path, suggestions: dict[str, Any]) -> list[str]:
    """Add suggested checks to the source YAML where it has none; keeps comments and layout (ruamel.yaml)."""
    from ruamel.yaml import YAML  # lazy: only `profile --write` edits YAML in place
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(path.read_text(encoding="utf-8"))
    changed: list[str] = []
    declared = {c["name"]: c for c in document.get("columns") or []}
    for name, suggestion in suggestions["columns"].items():
        if not suggestion["checks"]:
            continue
        column = declared.get(name)
        if column is None:
            continue  # undeclared (passed through) columns: declare them first to give them rules
        if not column.get("checks"):
            seq = CommentedSeq(suggestion["checks"])
            seq.fa.set_flow_style()
            column["checks"] = seq
            changed.append(f"columns.{name}.checks")
    if not document.get("checks") and suggestions["checks"]:
        rules = []
        for check in suggestions["checks"]:
            rule = CommentedMap(check)
            rule.fa.set_flow_style()
            rules.append(rule)
        document["checks"] = CommentedSeq(rules)
        changed.append("checks")
    if changed:
        with path.open("w", encoding="utf-8") as handle:
            yaml.dump(document, handle)
    return changed
