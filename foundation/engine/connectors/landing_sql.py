"""Compile a source spec and the raw schema of its files into the SQL that types, renames and flags rows.

Pure functions: given the same spec, raw schema and load context, the same SQL. Every row comes out with a
`_status`: `ok` (to land), `invalid` (to quarantine, with `_invalid_reason` and the raw `_raw_record`) or
`stale` (at or below the incremental cursor: already landed by an earlier load).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from foundation.engine.connectors.files import SOURCE_FILE_COLUMN
from foundation.engine.sql import quote_ident, quote_literal, snake_case
from foundation.specs.source import SourceSpec, duckdb_type

LINEAGE_COLUMNS = ("_load_id", "_loaded_at", SOURCE_FILE_COLUMN)
LINE_COLUMN = "_line"  # the physical line a record starts on in its file: `line_numbers: true` sources only
INTERNAL_COLUMNS = ("_status", "_invalid_reason", "_raw_record", "_superseded")  # `_superseded`: merge loads only
# An ENUM: DuckDB hands it to Arrow as a dictionary of three values, not as a string copied into every row.
STATUS_TYPE = "ENUM('ok', 'invalid', 'stale')"


class SchemaMismatchError(ValueError):
    """The files do not have the columns the YAML declares."""


@dataclass(frozen=True)
class ColumnPlan:
    name: str  # name in the lakehouse
    raw: str  # name in the files
    raw_type: str  # DuckDB type as read
    target_type: str | None  # declared DuckDB type; None keeps the type as read
    required: bool = False
    fmt: str | None = None
    pii: str | None = None  # hash | drop | keep, for PII columns

    @property
    def landed_type(self) -> str:
        if self.pii == "hash":
            return "VARCHAR"
        return self.target_type or self.raw_type


@dataclass(frozen=True)
class LoadContext:
    load_id: str
    loaded_at: datetime
    last_cursor: str | None = None
    pii_salt: str = ""


def declared_raw_text_columns(spec: SourceSpec) -> list[str]:
    """Raw names of declared, typed columns: read as text so that a bad value is flagged, not fatal."""
    return [c.raw_name for c in spec.columns if c.type is not None]


# Types DuckDB's CSV reader parses exactly as TRY_CAST from text would (same values accepted, same results:
# tests/engine/ingest/test_reader_typing.py). Dates and timestamps are not among them: the reader applies a format
# it sniffed from the file, which TRY_CAST does not.
READER_TYPES = frozenset({"BOOLEAN", "SMALLINT", "INTEGER", "BIGINT", "DOUBLE", "VARCHAR"})


def declared_reader_types(spec: SourceSpec) -> dict[str, str]:
    """Raw name -> DuckDB type of the declared columns the CSV reader can type itself, the others read as text.

    Parsing a number in the reader costs a third of reading it as text and casting it in the query. A value the
    reader cannot parse is a CAST reject, not a flagged row: the load then reads the files again as text
    (`declared_raw_text_columns`), so that the quarantine says what it always says."""
    types = dict.fromkeys(declared_raw_text_columns(spec), "VARCHAR")
    for column in spec.columns:
        if column.type is None or column.format or column.pii:
            continue
        if duckdb_type(column.type) in READER_TYPES:
            types[column.raw_name] = duckdb_type(column.type)
    return types


def plan_columns(spec: SourceSpec, raw_schema: list[tuple[str, str]]) -> list[ColumnPlan]:
    """Match declared columns to the raw ones; undeclared raw columns pass through in snake_case (or are left out:
    `undeclared_columns: drop`)."""
    raw_types = {name: kind for name, kind in raw_schema if name != SOURCE_FILE_COLUMN}
    declared_by_raw = {c.raw_name: c for c in spec.columns}
    missing = [c for c in spec.columns if c.raw_name not in raw_types]
    if missing:
        names = ", ".join(f"{c.name!r}" + (f" (from {c.raw_name!r})" if c.from_ else "") for c in missing)
        raise SchemaMismatchError(
            f"declared column(s) {names} not found in the data; the files have: {', '.join(raw_types)}. "
            "Fix the `from:` names in the YAML or the files."
        )
    # A row without a key value can never be matched by a merge: it would be inserted again by every re-run.
    keys = set(spec.load.primary_key)
    plans: list[ColumnPlan] = []
    for raw, raw_type in raw_types.items():
        column = declared_by_raw.get(raw)
        if column is None and spec.undeclared_columns == "drop":
            continue
        if column is None:
            name = snake_case(raw)
            plans.append(ColumnPlan(name=name, raw=raw, raw_type=raw_type, target_type=None, required=name in keys))
            continue
        if column.pii and column.pii_handling == "drop":
            continue
        plans.append(
            ColumnPlan(
                name=column.name,
                raw=raw,
                raw_type=raw_type,
                target_type=duckdb_type(column.type) if column.type else None,
                required=column.required or column.name in keys,
                fmt=column.format,
                pii=column.pii_handling if column.pii else None,
            )
        )
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.name in seen or plan.name in (*LINEAGE_COLUMNS, LINE_COLUMN, *INTERNAL_COLUMNS):
            other = seen.get(plan.name, "a lineage column")
            raise SchemaMismatchError(
                f"raw columns {other!r} and {plan.raw!r} both become {plan.name!r}; "
                "declare one of them in columns: with another name (name: ..., from: ...)"
            )
        seen[plan.name] = plan.raw
    cursor = spec.load.incremental.cursor if spec.load.incremental else None
    unknown = [k for k in [*spec.load.primary_key, *([cursor] if cursor else [])] if k not in seen]
    if unknown:
        raise SchemaMismatchError(
            f"load refers to column(s) {', '.join(map(repr, unknown))} that the data does not have; "
            f"the columns are: {', '.join(seen)}"
        )
    return plans


def _typed_by_reader(plan: ColumnPlan) -> bool:
    """The raw value already has the declared type (a typed reader, a Parquet file): nothing to cast, nothing fails."""
    return plan.target_type is not None and plan.target_type == plan.raw_type and plan.fmt is None


def _typed_expr(plan: ColumnPlan) -> str:
    raw = quote_ident(plan.raw)
    if plan.target_type is None or _typed_by_reader(plan):
        return raw
    if plan.fmt and plan.target_type in ("DATE", "TIMESTAMP", "TIMESTAMPTZ"):
        parsed = f"TRY_STRPTIME(CAST({raw} AS VARCHAR), {quote_literal(plan.fmt)})"
        return f"CAST({parsed} AS {plan.target_type})"
    return f"TRY_CAST({raw} AS {plan.target_type})"


def _hashed(expr: str, salt: str) -> str:
    return f"CASE WHEN {expr} IS NULL THEN NULL ELSE sha256({quote_literal(salt)} || CAST({expr} AS VARCHAR)) END"


def _landed_expr(plan: ColumnPlan, salt: str) -> str:
    typed = _typed_expr(plan)
    return _hashed(typed, salt) if plan.pii == "hash" else typed


def _raw_record_value(plan: ColumnPlan, salt: str) -> str:
    """A raw value as kept in the quarantine: hashed PII must not leak through the quarantine either."""
    raw = quote_ident(plan.raw)
    return _hashed(raw, salt) if plan.pii == "hash" else raw


def _reason_expr(plan: ColumnPlan) -> str | None:
    raw = quote_ident(plan.raw)
    typed = _typed_expr(plan)
    whens: list[str] = []
    if plan.target_type is not None and not _typed_by_reader(plan):
        # A PII value is never echoed: the quarantine reason would leak what the hash protects.
        shown = "'<pii>'" if plan.pii else f"left(CAST({raw} AS VARCHAR), 60)"
        expected = plan.target_type.lower() + (f" with format {plan.fmt}" if plan.fmt else "")
        prefix, suffix = f"{plan.name}: cannot read '", f"' as {expected}"
        whens.append(
            f"WHEN {raw} IS NOT NULL AND {typed} IS NULL THEN "
            f"{quote_literal(prefix)} || {shown} || {quote_literal(suffix)}"
        )
    if plan.required:
        whens.append(f"WHEN {typed} IS NULL THEN {quote_literal(plan.name + ': required value is missing')}")
    return f"CASE {' '.join(whens)} END" if whens else None


def _valid_expr(plan: ColumnPlan) -> str | None:
    """The negation of `_reason_expr`: the value types (and is present when required). No reason text is built."""
    raw, typed = quote_ident(plan.raw), _typed_expr(plan)
    conditions = []
    if plan.target_type is not None and not _typed_by_reader(plan):
        conditions.append(f"({raw} IS NULL OR {typed} IS NOT NULL)")
    if plan.required:
        conditions.append(f"{typed} IS NOT NULL")
    return " AND ".join(conditions) or None


def compile_newest_cursor_sql(spec: SourceSpec, plans: list[ColumnPlan], relation: str, context: LoadContext) -> str:
    """The newest cursor value among the rows the landing SQL marks `ok` (they type, and are newer than the last
    cursor): what the load state records. Equal to `max(cursor) ... WHERE _status = 'ok'` over the landing SQL,
    without what only the landed rows need (reason text, lineage, raw records, the merge's deduplication window,
    which cannot change a maximum): this query reads the files once more before the stream, so it must be cheap."""
    if spec.load.incremental is None or spec.load.incremental.cursor is None:
        raise ValueError(f"{spec.name}: no incremental cursor to compute")
    cursor_plan = next(p for p in plans if p.name == spec.load.incremental.cursor)
    typed = _typed_expr(cursor_plan)
    conditions = [c for c in (_valid_expr(p) for p in plans) if c is not None]
    if context.last_cursor is not None:
        conditions.append(f"NOT ({typed} <= CAST({quote_literal(context.last_cursor)} AS {cursor_plan.landed_type}))")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT max({_landed_expr(cursor_plan, context.pii_salt)}) FROM {relation}{where}"


def compile_landing_sql(
    spec: SourceSpec,
    plans: list[ColumnPlan],
    relation: str,
    context: LoadContext,
    constant_lineage: bool = True,
    source_file_in_sql: bool = True,
) -> str:
    """SELECT typing every column, flagging invalid and stale rows, adding lineage (and deduplicating for merge).

    `constant_lineage=False` leaves out `_load_id` and `_loaded_at`, the same for every row: a caller that adds
    them to each Arrow batch itself spares DuckDB copying them row by row (a sixth of a bare load's time);
    `source_file_in_sql=False` leaves out `_source_file` too, for a caller that knows it is one value (one file read;
    not for merge, whose deduplication orders by it)."""
    if not source_file_in_sql and spec.load.mode == "merge":
        raise ValueError("a merge load orders its duplicates by the source file: it must come from the SQL")
    reasons = [r for r in (_reason_expr(p) for p in plans) if r is not None]
    reason = f"NULLIF(concat_ws('; ', {', '.join(reasons)}), '')" if reasons else "CAST(NULL AS VARCHAR)"
    # `invalid` is true exactly when `reason` is not null, but costs no string: the reason text and the raw record
    # are built only for the rows it flags (a CASE evaluates its THEN only where its WHEN holds).
    valids = [v for v in (_valid_expr(p) for p in plans) if v is not None]
    invalid = f"NOT ({' AND '.join(valids)})" if valids else "FALSE"
    raw_record = (
        "to_json(struct_pack("
        + ", ".join(f"{quote_ident(p.raw)} := {_raw_record_value(p, context.pii_salt)}" for p in plans)
        + "))"
    )
    by_name = {p.name: p for p in plans}
    stale = "FALSE"
    cursor = spec.load.incremental.cursor if spec.load.incremental else None
    if cursor and context.last_cursor is not None:
        cursor_plan = by_name[cursor]
        stale = f"{_typed_expr(cursor_plan)} <= CAST({quote_literal(context.last_cursor)} AS {cursor_plan.landed_type})"
    select = [f"{_landed_expr(p, context.pii_salt)} AS {quote_ident(p.name)}" for p in plans]
    if constant_lineage:
        select += [
            f"{quote_literal(context.load_id)} AS _load_id",
            f"CAST({quote_literal(context.loaded_at.isoformat())} AS TIMESTAMPTZ) AS _loaded_at",
        ]
    select += [f"{quote_ident(SOURCE_FILE_COLUMN)}"] if source_file_in_sql else []
    select += [
        f"CAST(CASE WHEN {invalid} THEN 'invalid' WHEN {stale} THEN 'stale' ELSE 'ok' END AS {STATUS_TYPE}) AS _status",
        f"CASE WHEN {invalid} THEN {reason} END AS _invalid_reason",
        f"CASE WHEN {invalid} THEN {raw_record} END AS _raw_record",
    ]
    sql = f"SELECT {', '.join(select)} FROM {relation}"
    if spec.load.mode != "merge":
        return sql  # no `_superseded`: only a merge's deduplication supersedes rows
    # Several rows of one key in one load: the newest (by cursor, then file) wins, the others are counted.
    key = ", ".join(quote_ident(k) for k in spec.load.primary_key)
    order = f"{quote_ident(cursor)} DESC NULLS LAST, " if cursor else ""
    window = f"PARTITION BY _status, {key} ORDER BY {order}{quote_ident(SOURCE_FILE_COLUMN)} DESC"
    return (
        f"SELECT * EXCLUDE (_rank, _copies), CASE WHEN _status = 'ok' THEN _copies - 1 ELSE 0 END AS _superseded "
        f"FROM (SELECT *, row_number() OVER ({window}) AS _rank, count(*) OVER ({window.split(' ORDER BY')[0]}) "
        f"AS _copies FROM ({sql})) WHERE _status <> 'ok' OR _rank = 1"
    )
