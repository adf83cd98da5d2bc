"""Row rules (pandera on each batch in flight): each passes on good data and fails on crafted bad data.

An `error` row rule quarantines exactly the rows that break it (with the rule's name and the offending value);
a `warn` row rule lands them and reports a warning with a sample.
"""

from __future__ import annotations

import json
from itertools import zip_longest
from typing import Any

import pytest

from foundation.engine.ingest.runner import InvalidRowsError
from foundation.engine.quality.row_rules import RuleCompileError


def quarantined_ids(kit, name: str) -> list[int]:
    return sorted(json.loads(q["_raw_record"])["id"] for q in kit.quarantine(name))


def landed_ids(kit, name: str) -> list[int]:
    return [row["id"] for row in kit.rows(name, order_by="id")]


def csv_text(header: str, values: list[str]) -> str:
    """`id,<header>` rows with ids 1..n."""
    return f"id,{header}\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values, start=1))


# rule -> (column type, rule mapping, good values, bad values, offending text of each bad value in the reason)
COLUMN_RULES: dict[str, tuple[str, dict[str, Any], list[str], list[str], list[str]]] = {
    "between": ("double", {"between": [0, 100]}, ["0", "42.5", "100", ""], ["-0.5", "100.5"], ["-0.5", "100.5"]),
    "min": ("integer", {"min": 10}, ["10", "11", ""], ["9", "-3"], ["9", "-3"]),
    "max": ("integer", {"max": 10}, ["10", "-5", ""], ["11", "999"], ["11", "999"]),
    "accepted_values": (
        "varchar",
        {"accepted_values": ["tractor", "rigid", "van"]},
        ["van", "rigid", "tractor", ""],
        ["Van", "bus"],
        ["Van", "bus"],
    ),
    "regex": (
        "varchar",
        {"regex": r"^[A-Z]{2}-\d{3}$"},
        ["AB-123", "ZZ-000", ""],
        ["AB-12", "ab-123"],
        ["AB-12", "ab-123"],
    ),
    "not_null": ("varchar", {"not_null": True}, ["x", "y"], [""], ["None"]),
}


def one_column_source(spec, kind: str, severity: str = "error") -> dict[str, Any]:
    column_type, rule, *_ = COLUMN_RULES[kind]
    return spec(
        "readings",
        {"type": "csv", "path": "landing/readings/*.csv"},
        columns=[
            {"name": "id", "type": "integer"},
            {"name": "v", "type": column_type, "checks": [{**rule, "severity": severity}]},
        ],
    )


@pytest.mark.parametrize("kind", list(COLUMN_RULES))
def test_column_rule_passes_on_good_data(kind, make_workspace, spec, ingest, check_of):
    _, _, good, _, _ = COLUMN_RULES[kind]
    kit = make_workspace(sources=[one_column_source(spec, kind)])
    kit.land("landing/readings/1.csv", csv_text("v", good))
    report = ingest(kit, "readings")
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (len(good), len(good), 0)
    result = check_of(report, f"v__{kind}")
    assert (result["passed"], result["status"], result["failing"], result["sample"]) == (True, "pass", 0, [])
    assert result["stage"] == "row"


@pytest.mark.parametrize("kind", list(COLUMN_RULES))
def test_error_column_rule_quarantines_exactly_the_bad_rows(kind, make_workspace, spec, ingest, check_of):
    _, _, good, bad, offending = COLUMN_RULES[kind]
    # bad rows interleaved with good ones: ids of the bad ones are known
    values = [v for pair in zip_longest(good, bad) for v in pair if v is not None]
    bad_ids = [i for i, v in enumerate(values, start=1) if v in bad]
    kit = make_workspace(sources=[one_column_source(spec, kind)])
    kit.land("landing/readings/1.csv", csv_text("v", values))
    report = ingest(kit, "readings")
    assert report.rows_quarantined == len(bad)
    assert quarantined_ids(kit, "readings") == bad_ids
    assert landed_ids(kit, "readings") == [i for i in range(1, len(values) + 1) if i not in bad_ids]
    records = sorted(kit.quarantine("readings"), key=lambda q: json.loads(q["_raw_record"])["id"])
    for record, value in zip(records, offending, strict=True):
        assert record["_rule"] == f"v__{kind}"
        assert record["_invalid_reason"].endswith(f", got {value}"), record["_invalid_reason"]
        assert record["_load_id"] == report.load_id
    result = check_of(report, f"v__{kind}")
    # enforced: what was published meets the rule, the quarantine count is the evidence
    assert (result["passed"], result["status"], result["failing"]) == (True, "pass", len(bad))
    assert result["observed"] == f"{len(bad)} rows quarantined"
    assert sorted(result["sample"]) == sorted(offending)
    assert report.invalid_reasons == {f"v__{kind}": len(bad)}


@pytest.mark.parametrize("kind", ["between", "accepted_values", "regex", "not_null"])
def test_warn_column_rule_lands_the_rows_and_warns_with_a_sample(kind, make_workspace, spec, ingest, check_of):
    _, _, good, bad, offending = COLUMN_RULES[kind]
    kit = make_workspace(sources=[one_column_source(spec, kind, severity="warn")])
    kit.land("landing/readings/1.csv", csv_text("v", good + bad))
    report = ingest(kit, "readings")
    assert (report.rows_landed, report.rows_quarantined) == (len(good) + len(bad), 0)
    assert landed_ids(kit, "readings") == list(range(1, len(good) + len(bad) + 1))
    result = check_of(report, f"v__{kind}")
    assert (result["passed"], result["status"], result["severity"]) == (False, "warn", "warn")
    assert result["failing"] == len(bad)
    assert result["observed"] == f"{len(bad)} rows landed anyway"
    assert sorted(result["sample"]) == sorted(offending)


def test_a_row_failing_two_rules_is_quarantined_once_naming_both(make_workspace, spec, ingest):
    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/readings/*.csv"},
                columns=[
                    {"name": "id", "type": "integer"},
                    {"name": "temp", "type": "double", "checks": [{"max": 100}]},
                    {"name": "kind", "type": "varchar", "checks": [{"accepted_values": ["a", "b"]}]},
                ],
            )
        ]
    )
    kit.land("landing/readings/1.csv", "id,temp,kind\n1,20,a\n2,500,z\n3,30,b\n")
    report = ingest(kit, "readings")
    (record,) = kit.quarantine("readings")
    assert report.rows_quarantined == 1
    assert record["_rule"] == "temp__max, kind__accepted_values"
    assert record["_invalid_reason"] == "temp: values at most 100, got 500.0; kind: values in ['a', 'b'], got z"
    assert json.loads(record["_raw_record"]) == {"id": 2, "temp": 500.0, "kind": "z"}
    assert landed_ids(kit, "readings") == [1, 3]


def test_quarantine_is_exact_across_many_batches(make_workspace, spec, ingest, check_of):
    """Failure rows are indexed per batch: with 3-row batches, rows of later batches must map back correctly."""
    values = [str(v) for v in [5, 150, 7, 8, -1, 9, 10, 11, 200, 12, 13]]
    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/readings/*.csv"},
                columns=[
                    {"name": "id", "type": "integer"},
                    {"name": "v", "type": "integer", "checks": [{"between": [0, 100]}]},
                ],
            )
        ],
        settings={"ingest": {"batch_rows": 3}},
    )
    kit.land("landing/readings/1.csv", csv_text("v", values))
    report = ingest(kit, "readings")
    assert quarantined_ids(kit, "readings") == [2, 5, 9]
    assert landed_ids(kit, "readings") == [1, 3, 4, 6, 7, 8, 10, 11]
    assert check_of(report, "v__between")["failing"] == 3


# --- cross-column expressions ---------------------------------------------------------------------------

TRIPS = "id,started_at,ended_at\n"


def trips_source(spec, severity: str = "error") -> dict[str, Any]:
    return spec(
        "trips",
        {"type": "csv", "path": "landing/trips/*.csv"},
        columns=[
            {"name": "id", "type": "integer"},
            {"name": "started_at", "type": "timestamp"},
            {"name": "ended_at", "type": "timestamp"},
        ],
        checks=[{"expression": "ended_at >= started_at", "severity": severity, "name": "ends_after_start"}],
    )


def test_expression_passes_when_every_row_meets_it_and_on_null_operands(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[trips_source(spec)])
    kit.land(
        "landing/trips/1.csv",
        TRIPS + "1,2024-01-01 08:00,2024-01-01 09:00\n2,2024-01-01 08:00,2024-01-01 08:00\n"
        "3,,2024-01-01 09:00\n4,2024-01-01 08:00,\n",
    )
    report = ingest(kit, "trips")
    assert (report.rows_landed, report.rows_quarantined) == (4, 0)
    assert check_of(report, "ends_after_start")["status"] == "pass"
    assert check_of(report, "ends_after_start")["failing"] == 0


def test_expression_quarantines_rows_that_end_before_they_start(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[trips_source(spec)])
    kit.land(
        "landing/trips/1.csv",
        TRIPS + "1,2024-01-01 08:00,2024-01-01 09:00\n2,2024-01-01 10:00,2024-01-01 09:59\n"
        "3,,2024-01-01 09:00\n4,2024-01-02 00:00,2024-01-01 00:00\n",
    )
    report = ingest(kit, "trips")
    assert quarantined_ids(kit, "trips") == [2, 4]
    assert landed_ids(kit, "trips") == [1, 3]
    records = kit.quarantine("trips")
    assert {q["_rule"] for q in records} == {"ends_after_start"}
    reason = next(q["_invalid_reason"] for q in records if json.loads(q["_raw_record"])["id"] == 2)
    assert reason.startswith("every row meets: ended_at >= started_at, got ")
    assert "2024-01-01 10:00:00" in reason and "2024-01-01 09:59:00" in reason  # the offending operands
    assert check_of(report, "ends_after_start")["failing"] == 2


def test_warn_expression_lands_the_rows(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[trips_source(spec, severity="warn")])
    kit.land(
        "landing/trips/1.csv", TRIPS + "1,2024-01-01 08:00,2024-01-01 09:00\n2,2024-01-01 10:00,2024-01-01 09:00\n"
    )
    report = ingest(kit, "trips")
    assert (report.rows_landed, report.rows_quarantined) == (2, 0)
    result = check_of(report, "ends_after_start")
    assert (result["status"], result["failing"], len(result["sample"])) == ("warn", 1, 1)
    assert "2024-01-01 10:00:00" in result["sample"][0]


def test_expression_on_an_unknown_column_is_refused_before_reading(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "trips",
                {"type": "csv", "path": "landing/trips/*.csv"},
                checks=[{"expression": "ended_at >= startd_at"}],
            )
        ]
    )
    kit.land("landing/trips/1.csv", TRIPS + "1,2024-01-01 08:00,2024-01-01 09:00\n")
    with pytest.raises(RuleCompileError, match="startd_at, not in the landed data"):
        kit.ingest("trips")
    assert kit.version("trips") is None


# --- custom functions -----------------------------------------------------------------------------------

CUSTOM_MODULE = '''
import polars as pl


def positive_margin(df: pl.DataFrame) -> pl.Series:
    """Per row: price above cost (a null operand passes)."""
    return df["price"] > df["cost"]


def at_least_three_rows(df: pl.DataFrame) -> bool:
    """For the batch: too small a batch is suspicious."""
    return df.height >= 3


def broken(df: pl.DataFrame) -> pl.Series:
    raise RuntimeError("custom check exploded")
'''


@pytest.fixture
def custom_kit(make_workspace, spec, tmp_path):
    """A workspace with a checks module of its own (a name unique to the test: modules are cached by name)."""
    module = f"qchecks_{abs(hash(str(tmp_path))) % 10**8}"

    def make(function: str, severity: str = "error"):
        kit = make_workspace(
            sources=[
                spec(
                    "prices",
                    {"type": "csv", "path": "landing/prices/*.csv"},
                    columns=[
                        {"name": "id", "type": "integer"},
                        {"name": "price", "type": "double"},
                        {"name": "cost", "type": "double"},
                    ],
                    checks=[{"custom": {"function": f"{module}:{function}"}, "severity": severity}],
                )
            ]
        )
        kit.land(f"{module}.py", CUSTOM_MODULE)
        return kit

    return make


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch):
    """Custom checks put the workspace root on sys.path: keep that from leaking into other tests."""
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))


def test_custom_row_function_passes_on_good_data(custom_kit, ingest, check_of):
    kit = custom_kit("positive_margin")
    kit.land("landing/prices/1.csv", "id,price,cost\n1,10,4\n2,5,4.99\n3,,1\n")
    report = ingest(kit, "prices")
    assert (report.rows_landed, report.rows_quarantined) == (3, 0)
    assert check_of(report, "custom")["status"] == "pass"
    assert check_of(report, "custom")["description"].startswith("custom check qchecks_")


def test_custom_row_function_quarantines_the_rows_it_rejects(custom_kit, ingest, check_of):
    kit = custom_kit("positive_margin")
    kit.land("landing/prices/1.csv", "id,price,cost\n1,10,4\n2,3,4\n3,,1\n4,4,4\n5,9,1\n")
    report = ingest(kit, "prices")
    assert quarantined_ids(kit, "prices") == [2, 4]
    assert landed_ids(kit, "prices") == [1, 3, 5]
    assert {q["_rule"] for q in kit.quarantine("prices")} == {"custom"}
    assert check_of(report, "custom")["failing"] == 2


def test_custom_batch_function_passing_lands_everything(custom_kit, ingest, check_of):
    kit = custom_kit("at_least_three_rows")
    kit.land("landing/prices/1.csv", "id,price,cost\n1,10,4\n2,3,4\n3,5,1\n")
    report = ingest(kit, "prices")
    assert (report.rows_landed, report.rows_quarantined) == (3, 0)
    assert check_of(report, "custom")["failing"] == 0


def test_custom_batch_function_failing_quarantines_the_batch(custom_kit, ingest, check_of):
    kit = custom_kit("at_least_three_rows")
    kit.land("landing/prices/1.csv", "id,price,cost\n1,10,4\n2,3,4\n")
    report = ingest(kit, "prices")
    assert quarantined_ids(kit, "prices") == [1, 2]
    assert (report.rows_landed, check_of(report, "custom")["failing"]) == (0, 2)


def test_warn_custom_batch_function_lands_and_warns(custom_kit, ingest, check_of):
    kit = custom_kit("at_least_three_rows", severity="warn")
    kit.land("landing/prices/1.csv", "id,price,cost\n1,10,4\n2,3,4\n")
    report = ingest(kit, "prices")
    assert (report.rows_landed, report.rows_quarantined) == (2, 0)
    assert (check_of(report, "custom")["status"], check_of(report, "custom")["failing"]) == ("warn", 2)


def test_a_custom_function_that_raises_fails_the_load_instead_of_passing(custom_kit):
    kit = custom_kit("broken")
    kit.land("landing/prices/1.csv", "id,price,cost\n1,10,4\n")
    with pytest.raises(RuleCompileError, match=r"check custom could not run.*custom check exploded"):
        kit.ingest("prices")
    assert kit.version("prices") is None


def test_a_custom_function_that_cannot_be_imported_is_named(custom_kit):
    kit = custom_kit("no_such_function")
    kit.land("landing/prices/1.csv", "id,price,cost\n1,10,4\n")
    with pytest.raises(RuleCompileError, match="has no function 'no_such_function'"):
        kit.ingest("prices")


# --- rules that do not fit their column -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column_type", "rule", "message"),
    [
        ("varchar", {"between": [0, 1]}, "between needs a numeric column, but v is string"),
        ("date", {"min": 0}, "min needs a numeric column, but v is date32"),
        ("varchar", {"accepted_values": [1, 2]}, "v is string, but accepted_values are \\[1, 2\\]: quote them"),
        ("integer", {"accepted_values": ["a"]}, "v is int32, but accepted_values are \\['a'\\]"),
    ],
)
def test_a_rule_that_cannot_apply_to_its_column_is_refused(column_type, rule, message, make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/readings/*.csv"},
                columns=[{"name": "id", "type": "integer"}, {"name": "v", "type": column_type, "checks": [rule]}],
            )
        ]
    )
    kit.land("landing/readings/1.csv", "id,v\n1,1\n")
    with pytest.raises(RuleCompileError, match=message):
        kit.ingest("readings")
    assert kit.version("readings") is None


def test_accepted_numbers_apply_to_a_double_column(make_workspace, spec, ingest):
    """`accepted_values: [0, 1]` on a double column: whole numbers in the YAML still check the floats."""
    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/readings/*.csv"},
                columns=[
                    {"name": "id", "type": "integer"},
                    {"name": "v", "type": "double", "checks": [{"accepted_values": [0, 1]}]},
                ],
            )
        ]
    )
    kit.land("landing/readings/1.csv", "id,v\n1,0\n2,1\n3,0.5\n")
    ingest(kit, "readings")
    assert quarantined_ids(kit, "readings") == [3]


# --- what a failing row rule does under each on_invalid_rows ------------------------------------------------


def test_on_invalid_rows_fail_refuses_the_load_on_a_rule_failure(make_workspace, spec):
    source = one_column_source(spec, "between")
    kit = make_workspace(sources=[{**source, "on_invalid_rows": "fail"}])
    kit.land("landing/readings/1.csv", csv_text("v", ["1", "500"]))
    with pytest.raises(InvalidRowsError, match=r"v: values between 0 and 100, got 500\.0"):
        kit.ingest("readings")
    assert kit.version("readings") is None


def test_drop_with_count_counts_rule_failures(make_workspace, spec, ingest):
    source = one_column_source(spec, "between")
    kit = make_workspace(sources=[{**source, "on_invalid_rows": "drop-with-count"}])
    kit.land("landing/readings/1.csv", csv_text("v", ["1", "500", "2"]))
    report = ingest(kit, "readings")
    assert (report.rows_landed, report.rows_dropped, report.rows_quarantined) == (2, 1, 0)
    assert landed_ids(kit, "readings") == [1, 3]


def test_max_invalid_percent_counts_rule_failures(make_workspace, spec):
    source = one_column_source(spec, "between")
    kit = make_workspace(sources=[{**source, "max_invalid_percent": 40}])
    kit.land("landing/readings/1.csv", csv_text("v", ["1", "500", "-3", "2"]))
    with pytest.raises(InvalidRowsError, match="2 of 4 rows are invalid"):
        kit.ingest("readings")
    assert kit.version("readings") is None


# --- PII columns are hashed before the rules see them ---------------------------------------------------------


def test_a_value_rule_on_a_hashed_pii_column_is_refused_by_check(tmp_path):
    """A regex on a hashed e-mail would judge the hash and quarantine every row: `foundation check` refuses it."""
    from foundation.core.workspace import scan_usecases

    sources = tmp_path / "usecases" / "uc" / "sources"
    sources.mkdir(parents=True)
    (sources / "drivers.yaml").write_text(
        "name: drivers\ndescription: drivers of the fleet\nowner: a@b.co\nschedule: manual\n"
        "extract: {type: csv, path: landing/drivers.csv}\ncolumns:\n"
        "  - {name: driver_email, type: varchar, pii: true, checks: [{regex: '^[^@]+@[^@]+$'}]}\n"
    )
    errors = [e for e in scan_usecases(tmp_path).errors if e.severity == "error"]
    assert len(errors) == 1
    assert errors[0].line == 7 and errors[0].field == "columns[0]"
    assert "hashed PII, so regex cannot apply" in errors[0].message


def test_not_null_on_a_hashed_pii_column_still_applies(make_workspace, spec, ingest):
    email = {"name": "driver_email", "type": "varchar", "pii": True, "checks": [{"not_null": True}]}
    kit = make_workspace(
        sources=[
            spec(
                "drivers",
                {"type": "csv", "path": "landing/drivers.csv"},
                columns=[{"name": "id", "type": "integer"}, email],
            )
        ]
    )
    kit.land("landing/drivers.csv", "id,driver_email\n1,a@example.com\n2,\n3,b@example.com\n")
    ingest(kit, "drivers")
    assert quarantined_ids(kit, "drivers") == [2]
    assert "a@example.com" not in str(kit.rows("drivers"))  # landed hashed


def test_pandera_loads_without_pyspark_even_where_pyspark_is_installed() -> None:
    """pandera imports pyspark.pandas when it can (seconds, and a warning); our rules run on polars and skip it."""
    import subprocess
    import sys

    code = (
        "import sys; from foundation.engine.quality.row_rules import _pandera; pa = _pandera(); "
        "assert pa.DataFrameSchema is not None; "
        "print(sorted(m for m in sys.modules if m == 'pyspark' or m.startswith('pyspark.')))"
    )
    result = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
