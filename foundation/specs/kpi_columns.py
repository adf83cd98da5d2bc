"""A KPI's `expression` and `filter` checked against its model's columns before anything runs.

DuckDB's own parser (`json_serialize_sql`) gives the columns an expression references: no table, no data and no types
are needed, so a column that does not exist is reported by `foundation check` with the KPI file and line, instead of
failing at `run`. Imported only by the checks: it loads DuckDB.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import duckdb

from foundation.specs.errors import SpecError
from foundation.specs.kpi import KpiRef

SQL_HINT = "an aggregate over the model's columns, e.g. sum(failures) (DuckDB dialect)"


def _walk(node: Any, columns: list[str], lambda_params: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, columns, lambda_params)
        return
    if not isinstance(node, dict):
        return
    if node.get("class") == "LAMBDA":  # `x -> x + 1`: x is a parameter, not a column
        lhs = node.get("lhs", {})
        lambda_params.update(n[-1].lower() for n in [lhs.get("column_names", [])] if n)
    if node.get("class") == "COLUMN_REF" and node.get("column_names"):
        columns.append(node["column_names"][-1])
    for value in node.values():
        _walk(value, columns, lambda_params)


def referenced_columns(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """The column names a query references, in order (lambda parameters left out); ValueError when it does not parse."""
    tree = json.loads(con.execute("select json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        raise ValueError(tree.get("error_message", "not valid SQL"))
    columns: list[str] = []
    lambda_params: set[str] = set()
    _walk(tree, columns, lambda_params)
    return [c for c in dict.fromkeys(columns) if c.lower() not in lambda_params]


def _hint(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"use one of its documented columns: {', '.join(sorted(known))}"


QUERIES = {"expression": "select {} from t", "filter": "select 1 from t where {}"}


def kpi_column_errors(kpi: KpiRef, columns: set[str]) -> list[SpecError]:
    """A simple KPI's expression and filter must parse and reference only columns of its model (`columns`)."""
    spec = kpi.spec
    known = {c.lower() for c in columns}
    errors: list[SpecError] = []
    with duckdb.connect() as con:
        for key, query in QUERIES.items():
            text = getattr(spec, key)
            if text is None or "{{" in text:  # dbt Jinja is resolved by dbt, not here
                continue
            line = kpi.line_of.get(key)
            try:
                found = referenced_columns(con, query.format(text))
            except ValueError as exc:
                message = f"not valid SQL: {exc} (read as: {query.format(text)})"
                errors.append(SpecError(kpi.path, line, key, message, SQL_HINT))
                continue
            for name in found:
                if name.lower() not in known:
                    message = f"model {spec.model!r} has no column {name!r}"
                    errors.append(SpecError(kpi.path, line, key, message, _hint(name, columns)))
    return errors
