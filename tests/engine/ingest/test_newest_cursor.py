"""The query that finds the newest cursor before the stream: same answer as `max(cursor)` over the landing SQL's `ok`
rows, without the landing SQL's costly parts (reason text, raw records, the merge window)."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from foundation.engine.connectors.landing_sql import (
    LoadContext,
    compile_landing_sql,
    compile_newest_cursor_sql,
    plan_columns,
)
from foundation.engine.sql import quote_ident
from foundation.specs.source import SourceSpec

ROWS = [  # id, at, temp (raw text, as a CSV reader gives them when the columns are read as text)
    ("1", "2024-01-01 10:00:00", "20.5"),
    ("2", "2024-01-03 00:00:00", "oops"),  # the newest, but its temp does not type: invalid, not a cursor value
    ("2", "2024-01-01 12:00:00", "21.0"),  # a key seen twice (merge keeps one)
    ("3", None, "22.0"),  # no cursor: required below, so invalid
    ("4", "2024-01-02 09:00:00", None),  # temp missing but not required: ok
    ("5", "not a time", "23.0"),  # the cursor itself does not type: invalid
    ("6", "2023-12-31 23:00:00", "19.0"),  # older than a last cursor of 2024-01-01: stale then
]


def source(mode: str) -> SourceSpec:
    load: dict = {"mode": mode, "incremental": {"cursor": "at"}}
    if mode == "merge":
        load["primary_key"] = ["id"]
    return SourceSpec.model_validate(
        {
            "name": "readings",
            "description": "test readings",
            "owner": "data@example.com",
            "schedule": "manual",
            "extract": {"type": "csv", "path": "landing/*.csv"},
            "load": load,
            "columns": [
                {"name": "id", "type": "integer", "required": True},
                {"name": "at", "type": "timestamp", "required": True},
                {"name": "temp", "type": "double"},
            ],
        }
    )


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute('CREATE TABLE raw (id VARCHAR, "at" VARCHAR, temp VARCHAR, _source_file VARCHAR)')
    con.executemany("INSERT INTO raw VALUES (?, ?, ?, 'f.csv')", ROWS)
    return con


@pytest.mark.parametrize("mode", ["append", "merge"])
@pytest.mark.parametrize(
    ("last_cursor", "expected"),
    [(None, datetime(2024, 1, 2, 9)), ("2024-01-01 11:00:00", datetime(2024, 1, 2, 9)), ("2024-01-05", None)],
)
def test_newest_cursor_equals_the_max_over_the_landed_ok_rows(
    con: duckdb.DuckDBPyConnection, mode: str, last_cursor: str | None, expected: datetime | None
) -> None:
    spec = source(mode)
    raw_schema = [(r[0], r[1]) for r in con.execute("DESCRIBE SELECT * FROM raw").fetchall()]
    plans = plan_columns(spec, raw_schema)
    context = LoadContext(load_id="L1", loaded_at=datetime(2024, 2, 1, tzinfo=UTC), last_cursor=last_cursor)
    landing = compile_landing_sql(spec, plans, "raw", context)
    reference = con.execute(f"SELECT max({quote_ident('at')}) FROM ({landing}) WHERE _status = 'ok'").fetchall()
    newest_sql = compile_newest_cursor_sql(spec, plans, "raw", context)
    newest = con.execute(newest_sql).fetchall()
    assert newest == reference == [(expected,)]
    assert " OVER " not in newest_sql and "_raw_record" not in newest_sql  # none of the landing's costly parts


def test_a_source_without_cursor_has_no_newest_cursor_query() -> None:
    spec = source("append").model_copy(update={"load": source("append").load.model_copy(update={"incremental": None})})
    with pytest.raises(ValueError, match="no incremental cursor"):
        compile_newest_cursor_sql(spec, [], "raw", LoadContext(load_id="L", loaded_at=datetime.now(UTC)))
