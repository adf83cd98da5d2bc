"""pandera's built-in checks stated as DuckDB SQL must fail exactly the rows pandera's polars backend fails.

Each case runs the same check on the same values twice, with pandera (polars backend, as the row rules did on
every batch) and with the SQL the landing query evaluates, and compares the failing rows, edge values included
(null, NaN, infinities, bounds, Unicode digits). A check the SQL cannot state exactly must come back as None,
so that pandera runs it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from foundation.engine.quality.pandera_sql import (
    PanderaCheck,
    check_predicate,
    failure,
    not_null_failure,
    re2_pattern,
)
from foundation.engine.quality.row_rules import _pandera

NUMBERS = [0.0, -40.0, 200.0, -40.000001, 200.5, 1e300, math.inf, -math.inf, math.nan, None, 42.0]
INTEGERS = [0, 1, -1, 4000, 4001, None, 10, 9]
TEXT = ["TRK-0001", "TRK-001", "trk-0001", "TRK-٠١٢٣", "", None, "TRK-0001x", "xTRK-0001", "a\nb", "van", "Van"]

CASES: list[tuple[str, str, list[Any], PanderaCheck]] = [
    ("DOUBLE", "double", NUMBERS, PanderaCheck("in_range", {"min_value": -40.0, "max_value": 200.0})),
    (
        "DOUBLE",
        "double",
        NUMBERS,
        PanderaCheck("in_range", {"min_value": -40.0, "max_value": 200.0, "include_min": False, "include_max": False}),
    ),
    ("DOUBLE", "double", NUMBERS, PanderaCheck("greater_than_or_equal_to", {"min_value": 0.0})),
    ("DOUBLE", "double", NUMBERS, PanderaCheck("less_than_or_equal_to", {"max_value": 200.0})),
    ("DOUBLE", "double", NUMBERS, PanderaCheck("greater_than", {"min_value": -40.0})),
    ("DOUBLE", "double", NUMBERS, PanderaCheck("less_than", {"max_value": math.inf})),
    ("DOUBLE", "double", NUMBERS, PanderaCheck("isin", {"allowed_values": [0.0, 42.0, math.inf]})),
    ("DOUBLE", "double", NUMBERS, PanderaCheck("notin", {"forbidden_values": [0.0, 42.0]})),
    ("INTEGER", "int32", INTEGERS, PanderaCheck("in_range", {"min_value": 0.0, "max_value": 4000.0})),
    ("INTEGER", "int32", INTEGERS, PanderaCheck("greater_than_or_equal_to", {"min_value": 10.0})),
    ("INTEGER", "int32", INTEGERS, PanderaCheck("isin", {"allowed_values": [0, 1, 10]})),
    ("INTEGER", "int32", INTEGERS, PanderaCheck("equal_to", {"value": 10})),
    ("INTEGER", "int32", INTEGERS, PanderaCheck("not_equal_to", {"value": 10})),
    ("VARCHAR", "string", TEXT, PanderaCheck("isin", {"allowed_values": ["van", "TRK-0001", ""]})),
    ("VARCHAR", "string", TEXT, PanderaCheck("str_matches", {"pattern": r"^TRK-\d{4}$"})),
    ("VARCHAR", "string", TEXT, PanderaCheck("str_matches", {"pattern": r"TRK-[0-9]+"})),
    ("VARCHAR", "string", TEXT, PanderaCheck("str_matches", {"pattern": r"(?i)trk-\d\d"})),
    ("VARCHAR", "string", TEXT, PanderaCheck("str_matches", {"pattern": r"[^a-z]+$"})),
    ("VARCHAR", "string", TEXT, PanderaCheck("str_matches", {"pattern": r"a.b|van|[]x]"})),
    ("VARCHAR", "string", TEXT, PanderaCheck("str_contains", {"pattern": r"\d{3}$"})),
    ("VARCHAR", "string", TEXT, PanderaCheck("str_startswith", {"string": "TRK"})),
    ("VARCHAR", "string", TEXT, PanderaCheck("str_endswith", {"string": "1"})),
    (
        "DECIMAL(10,2)",
        "decimal",
        [Decimal("1.50"), Decimal("0.10"), None, Decimal("-3.00")],
        PanderaCheck("isin", {"allowed_values": [Decimal("1.5"), Decimal("0.1")]}),
    ),
    (
        "DECIMAL(10,2)",
        "decimal",
        [Decimal("1.50"), Decimal("0.10"), None, Decimal("-3.00")],
        PanderaCheck("in_range", {"min_value": 0.0, "max_value": 1.5}),
    ),
]

ARROW_TYPES = {"double": pa.float64(), "int32": pa.int32(), "string": pa.string(), "decimal": pa.decimal128(10, 2)}


def _pandera_failures(values: list[Any], arrow_type: str, check: PanderaCheck | None) -> list[int]:
    import polars as pl

    pandera = _pandera()
    frame = pl.from_arrow(pa.table({"v": pa.array(values, type=ARROW_TYPES[arrow_type])}))
    if check is None:
        column = pandera.Column(None, nullable=False)
    else:
        check_object = getattr(pandera.Check, check.name)(**check.statistics)
        column = pandera.Column(None, checks=[check_object], nullable=True)  # as the row validator builds it
    try:
        pandera.DataFrameSchema({"v": column}).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        indexes = exc.failure_cases["index"].to_list()
        assert None not in indexes, exc.failure_cases  # the check ran on every row
        return sorted(indexes)
    return []


def _sql_failures(values: list[Any], arrow_type: str, duckdb_type: str, condition: str) -> list[int]:
    con = duckdb.connect()
    data = pa.table({"v": pa.array(values, type=ARROW_TYPES[arrow_type])})
    con.register("data", data)
    # cast as the landing query would have typed the column (Arrow int32 is INTEGER, etc.)
    rows = con.execute(
        f"SELECT i FROM (SELECT CAST(v AS {duckdb_type}) AS v, row_number() OVER () - 1 AS i FROM data) "
        f"WHERE {condition} ORDER BY i"
    ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize(("duckdb_type", "arrow_type", "values", "check"), CASES, ids=lambda v: str(v)[:40])
def test_sql_fails_exactly_the_rows_pandera_fails(duckdb_type, arrow_type, values, check):
    predicate = check_predicate(check, "v", duckdb_type)
    assert predicate is not None, f"{check} should be stated in SQL"
    assert _sql_failures(values, arrow_type, duckdb_type, failure(predicate)) == _pandera_failures(
        values, arrow_type, check
    )


@pytest.mark.parametrize(
    ("duckdb_type", "arrow_type", "values"),
    [("DOUBLE", "double", NUMBERS), ("INTEGER", "int32", INTEGERS), ("VARCHAR", "string", TEXT)],
)
def test_not_null_fails_nulls_and_nan_as_pandera_does(duckdb_type, arrow_type, values):
    condition = not_null_failure("v", duckdb_type)
    assert _sql_failures(values, arrow_type, duckdb_type, condition) == _pandera_failures(values, arrow_type, None)


@pytest.mark.parametrize(
    "pattern",
    [
        r"^\w+$",  # \w is Unicode in Rust, ASCII in RE2
        r"^\s",
        r"\bvan\b",
        r"^[a-z&&[^x]]$",  # class set operation (Rust only)
        r"^[a[bc]]$",  # nested class (Rust only)
        r"(?x) a b",  # verbose flag (Rust only)
        r"(?P<id>\d+)",
        r"^a{1001}$",  # repetition RE2 refuses
    ],
)
def test_regex_features_that_differ_between_engines_stay_with_pandera(pattern):
    assert re2_pattern(pattern) is None
    assert check_predicate(PanderaCheck("str_matches", {"pattern": pattern}), "v", "VARCHAR") is None


@pytest.mark.parametrize(
    ("check", "duckdb_type"),
    [
        (PanderaCheck("in_range", {"min_value": 0, "max_value": 1}), "VARCHAR"),  # numbers on text
        (PanderaCheck("isin", {"allowed_values": [1, 2]}), "VARCHAR"),
        (PanderaCheck("isin", {"allowed_values": ["a"]}), "INTEGER"),
        (PanderaCheck("isin", {"allowed_values": "abc"}), "VARCHAR"),  # pandera: a set of characters
        (PanderaCheck("str_length", {"min_value": 1}), "VARCHAR"),  # not stated: pandera runs it
        (PanderaCheck("some_registered_check", {}), "DOUBLE"),
    ],
)
def test_checks_sql_cannot_state_exactly_are_left_to_pandera(check, duckdb_type):
    assert check_predicate(check, "v", duckdb_type) is None


def test_a_load_with_only_built_in_rules_imports_neither_pandera_nor_pandas(tmp_path):
    """The built-in rules run in the landing query: a clean load pays none of pandera's, polars' or pandas'
    imports, and a load with failing rows none of pandera's or polars' (its quarantine write uses pandas)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    clean, dirty = [line for line in result.stdout.splitlines() if line.count(";") == 2]
    assert clean == "2;0;"  # landed; quarantined; heavy modules the load imported
    assert dirty == "1;1;pandas"


SOURCE_YAML = """
name: r
description: Import probe source
owner: a@example.com
schedule: manual
extract: {type: csv, path: landing/*.csv}
load: {mode: append}
columns:
  - {name: id, type: integer, checks: [{not_null: true}]}
  - {name: v, type: double, checks: [{between: [0, 100]}, {min: 0}]}
  - {name: k, type: varchar, checks: [{accepted_values: [a, b]}, {regex: '^[a-z]$'}]}
"""
USECASE_YAML = (
    "title: Probe\ndescription: Import probe use case\nowner: a@example.com\n"
    "type: analytics_prediction\nphase: development\nrefresh: manual\n"
)
PROBE = f"""
import sys
from pathlib import Path
root = Path(sys.argv[1])
(root / "usecases" / "u" / "sources").mkdir(parents=True)
(root / "landing").mkdir()
(root / "foundation.yaml").write_text("state_dir: .foundation\\n")
(root / "usecases" / "u" / "usecase.yaml").write_text({USECASE_YAML!r})
(root / "usecases" / "u" / "sources" / "r.yaml").write_text({SOURCE_YAML!r})
from foundation.core.workspace import Workspace
from foundation.engine.ingest.runner import ingest_source
for name, text in (("1.csv", "id,v,k\\n1,5,a\\n2,7,b\\n"), ("2.csv", "id,v,k\\n3,500,b\\n4,8,a\\n")):
    (root / "landing" / name).write_text(text)
    workspace = Workspace.open(root)
    before = set(sys.modules)
    report = ingest_source(workspace, workspace.sources()[0])
    heavy = sorted(m for m in ("pandera", "polars", "pandas") if m in sys.modules and m not in before)
    print(f"{{report.rows_landed}};{{report.rows_quarantined}};{{','.join(heavy)}}")
"""


def test_rules_in_sql_and_rules_left_to_pandera_quarantine_together(make_workspace, spec, ingest, check_of):
    """`\\w` stays with pandera (Unicode, as polars reads it: `é` passes), `max` runs in SQL: a row failing both is
    quarantined once, its rules in declaration order, exactly as when pandera ran both."""
    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/readings/*.csv"},
                columns=[
                    {"name": "id", "type": "integer"},
                    {"name": "code", "type": "varchar", "checks": [{"regex": r"^\w+$"}]},
                    {"name": "temp", "type": "double", "checks": [{"max": 100}]},
                ],
            )
        ]
    )
    kit.land("landing/readings/1.csv", "id,code,temp\n1,café,20\n2,a b,500\n3,ok,300\n4,x-y,30\n")
    report = ingest(kit, "readings")
    records = {json.loads(q["_raw_record"])["id"]: q for q in kit.quarantine("readings")}
    assert sorted(records) == [2, 3, 4]
    assert records[2]["_rule"] == "code__regex, temp__max"
    assert records[2]["_invalid_reason"] == "code: values match ^\\w+$, got a b; temp: values at most 100, got 500.0"
    assert records[3]["_rule"] == "temp__max"
    assert records[4]["_rule"] == "code__regex"
    assert [row["id"] for row in kit.rows("readings", order_by="id")] == [1]
    assert check_of(report, "code__regex")["failing"] == 2
    assert check_of(report, "temp__max")["failing"] == 2
