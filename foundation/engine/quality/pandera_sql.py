"""pandera's built-in checks as DuckDB predicates, so that the row rules run inside the landing query.

Every row rule is a pandera check: a check name (`in_range`, `isin`, `str_matches`...) and its statistics (the
arguments pandera keeps on `Check.statistics`). pandera runs a check through one of its backends; for the
built-in checks whose meaning DuckDB can state exactly, this module is one more backend: it turns the check into
the SQL condition a row must meet, and the landing query evaluates every such condition while it types the
rows, in DuckDB's threads, with no copy of the batch. A check it cannot state exactly (a registered custom check,
a regex using a class whose meaning differs between polars' Rust regex and DuckDB's RE2) returns None: the
caller runs it with pandera's polars backend on each batch, as before.

Semantics kept from pandera's polars backend: a null value passes every check but `not_null`; `not_null` also
refuses NaN in a floating-point column; NaN compares greater than every number (polars and DuckDB agree).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import duckdb

from foundation.engine.sql import quote_ident, quote_literal

INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER")
INTEGER_TYPES += ("UBIGINT", "UHUGEINT")
FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
TEXT_TYPES = ("VARCHAR",)
MAX_SQL_CHECKS = 62  # the failures of a row are one BIGINT bit mask

_COMPARISONS = {
    "greater_than_or_equal_to": (">=", "min_value"),
    "less_than_or_equal_to": ("<=", "max_value"),
    "greater_than": (">", "min_value"),
    "less_than": ("<", "max_value"),
    "equal_to": ("=", "value"),
    "not_equal_to": ("<>", "value"),
}


@dataclass(frozen=True)
class PanderaCheck:
    """A pandera built-in check as data: `getattr(pandera.Check, name)(**statistics)` builds it."""

    name: str
    statistics: dict[str, Any]


def _kind(duckdb_type: str) -> str:
    upper = duckdb_type.upper()
    if upper.startswith(INTEGER_TYPES):
        return "integer"
    if upper.startswith(FLOAT_TYPES):
        return "float"
    if upper.startswith("DECIMAL"):
        return "decimal"
    if upper.startswith(TEXT_TYPES):
        return "text"
    if upper == "BOOLEAN":
        return "boolean"
    return "other"


def _number(value: Any, kind: str, duckdb_type: str) -> str | None:
    """A number literal DuckDB compares as polars does: floats as DOUBLE (inf and nan included)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    if kind not in ("integer", "float", "decimal"):
        return None
    if isinstance(value, Decimal):
        return f"CAST({quote_literal(str(value))} AS {duckdb_type})"
    if isinstance(value, int):
        return str(value)
    return f"CAST({quote_literal(repr(value))} AS DOUBLE)"


def _value(value: Any, kind: str, duckdb_type: str) -> str | None:
    if kind == "text":
        return quote_literal(value) if isinstance(value, str) else None
    if kind == "boolean":
        return ("TRUE" if value else "FALSE") if isinstance(value, bool) else None
    return _number(value, kind, duckdb_type)


def _values(values: Iterable[Any], kind: str, duckdb_type: str) -> str | None:
    rendered = [_value(v, kind, duckdb_type) for v in values]
    if not rendered or any(r is None for r in rendered):
        return None
    return ", ".join(r for r in rendered if r is not None)


# Rust regex (polars) and RE2 (DuckDB) agree on literals, anchors, groups, alternation, repetition and simple
# classes. They differ on \w \s \b (Unicode in Rust, ASCII in RE2), on class set operations and nested classes
# (Rust only), and on some flags: a pattern using any of those stays with pandera's polars backend.
_SAFE_ESCAPES = set(r".^$*+?()[]{}|\-/#&~ ") | {"n", "t", "r"}
_FLAG_GROUP = re.compile(r"\(\?([imsU]+)\)|\(\?([imsU]*):")


def re2_pattern(pattern: str) -> str | None:
    """The RE2 pattern that matches exactly what `pattern` matches in Rust's regex, or None if unsure."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern):
                return None
            escaped = pattern[i + 1]
            if escaped == "d":
                out.append(r"\p{Nd}")  # Rust's \d is Unicode's decimal digits
            elif escaped == "D":
                out.append(r"\P{Nd}")
            elif escaped in _SAFE_ESCAPES:
                out.append("\\" + escaped)
            else:
                return None
            i += 2
            continue
        if in_class:
            if char == "[" and not pattern.startswith("[:", i):
                return None  # a nested class, or a POSIX class (same in both, but kept simple)
            if pattern.startswith(("&&", "--", "~~"), i):
                return None  # class set operations
            if char == "]":
                in_class = False
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^")
                i += 2
            else:
                out.append("[")
                i += 1
            if i < len(pattern) and pattern[i] == "]":  # a leading ] is literal in both
                out.append("]")
                i += 1
            continue
        if char == "(" and pattern.startswith("(?", i):
            flags = _FLAG_GROUP.match(pattern, i)
            if flags is None:
                return None  # named groups, look-around, other flags
            out.append(flags.group(0))
            i = flags.end()
            continue
        out.append(char)
        i += 1
    if in_class:
        return None
    translated = "".join(out)
    return translated if _re2_compiles(translated) else None


@cache
def _re2_compiles(pattern: str) -> bool:
    try:
        duckdb.sql(f"SELECT regexp_matches('', {quote_literal(pattern)})").fetchall()
    except duckdb.Error:
        return False
    return True


def check_predicate(check: PanderaCheck, column: str, duckdb_type: str) -> str | None:
    """The SQL condition a value of `column` meets when `check` passes it (null: unknown), or None."""
    kind = _kind(duckdb_type)
    col = quote_ident(column)
    stats = check.statistics
    if check.name == "in_range":
        low = _number(stats.get("min_value"), kind, duckdb_type)
        high = _number(stats.get("max_value"), kind, duckdb_type)
        if low is None or high is None:
            return None
        low_op = ">=" if stats.get("include_min", True) else ">"
        high_op = "<=" if stats.get("include_max", True) else "<"
        return f"({col} {low_op} {low} AND {col} {high_op} {high})"
    if check.name in _COMPARISONS:
        op, key = _COMPARISONS[check.name]
        value = _value(stats.get(key), kind, duckdb_type)
        return None if value is None else f"({col} {op} {value})"
    if check.name in ("isin", "notin"):
        values = stats.get("allowed_values" if check.name == "isin" else "forbidden_values")
        if isinstance(values, str) or values is None:
            return None  # pandera reads a string as a set of characters: leave that to pandera
        rendered = _values(values, kind, duckdb_type)
        if rendered is None:
            return None
        return f"({col} {'IN' if check.name == 'isin' else 'NOT IN'} ({rendered}))"
    if kind != "text":
        return None
    if check.name in ("str_matches", "str_contains"):
        pattern = stats.get("pattern")
        if not isinstance(pattern, str):
            return None
        if check.name == "str_matches" and not pattern.startswith("^"):
            pattern = f"^{pattern}"  # as pandera does: a match from the start
        translated = re2_pattern(pattern)
        return None if translated is None else f"regexp_matches({col}, {quote_literal(translated)})"
    if check.name in ("str_startswith", "str_endswith"):
        text = stats.get("string")
        if not isinstance(text, str):
            return None
        function = "starts_with" if check.name == "str_startswith" else "ends_with"
        return f"{function}({col}, {quote_literal(text)})"
    return None


def not_null_failure(column: str, duckdb_type: str) -> str:
    """The condition under which pandera's `nullable=False` refuses a value (NaN counts as null for floats)."""
    col = quote_ident(column)
    if _kind(duckdb_type) == "float":
        return f"({col} IS NULL OR isnan({col}))"
    return f"({col} IS NULL)"


def failure(predicate: str) -> str:
    """A row fails a check when its condition is false; null (a null operand) passes, as in pandera."""
    return f"NOT coalesce({predicate}, TRUE)"
