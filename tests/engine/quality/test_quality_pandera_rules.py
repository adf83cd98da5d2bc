"""`pandera:` rules: a check registered with pandera (`register_check_method`) works at every level.

One module registers two checks, as a user would: `divisible_by` answers per row, `at_most_rows` answers once for
the frame. The same YAML rule runs at row level (failing rows quarantined), load level (a failing row refuses the
load, nothing published) and table level (the whole table after the commit), and every result has the shape of
the built-in rules' results.
"""

from __future__ import annotations

import json
import sys

import pytest

from foundation.engine.quality.row_rules import RuleCompileError

MODULE = "qpandera_user_checks"  # one name for the file: pandera check names are process-wide
CHECKS_MODULE = '''
import pandera.extensions as extensions
import polars as pl


@extensions.register_check_method(statistics=["divisor"])
def divisible_by(data, *, divisor):
    """One boolean per row."""
    return data.lazyframe.select(pl.col(data.key) % divisor == 0)


@extensions.register_check_method(statistics=["limit"])
def at_most_rows(data, *, limit):
    """One boolean for the whole frame."""
    return data.lazyframe.select(pl.len()).collect().item() <= limit
'''


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch):
    """`module:` puts the workspace root on sys.path: keep that from leaking into other tests."""
    monkeypatch.setattr(sys, "path", list(sys.path))


def source(spec, column_rules=(), table_rules=()):
    return spec(
        "counts",
        {"type": "csv", "path": "landing/counts/*.csv"},
        columns=[{"name": "id", "type": "integer"}, {"name": "n", "type": "integer", "checks": list(column_rules)}],
        checks=list(table_rules),
    )


def divisible(level: str, **extra):
    return {"pandera": {"check": "divisible_by", "module": MODULE, "args": {"divisor": 2}, "level": level}, **extra}


def kit_with(make_workspace, spec, **rules):
    kit = make_workspace(sources=[source(spec, **rules)])
    kit.land(f"{MODULE}.py", CHECKS_MODULE)
    return kit


def test_row_level_quarantines_the_rows_the_registered_check_fails(make_workspace, spec, ingest, check_of):
    kit = kit_with(make_workspace, spec, column_rules=[divisible("row")])
    kit.land("landing/counts/1.csv", "id,n\n1,2\n2,3\n3,\n4,8\n5,7\n")
    report = ingest(kit, "counts")
    assert [row["id"] for row in kit.rows("counts", order_by="id")] == [1, 3, 4]  # null passes
    quarantined = sorted(kit.quarantine("counts"), key=lambda q: json.loads(q["_raw_record"])["id"])
    assert [q["_rule"] for q in quarantined] == ["n__divisible_by", "n__divisible_by"]
    assert quarantined[0]["_invalid_reason"] == "n: pandera check divisible_by(divisor=2), got 3"
    result = check_of(report, "n__divisible_by")
    assert (result["stage"], result["status"], result["failing"], result["observed"]) == (
        "row",
        "pass",
        2,
        "2 rows quarantined",
    )


def test_load_level_error_refuses_the_load_and_publishes_nothing(make_workspace, spec, refused):
    kit = kit_with(make_workspace, spec, column_rules=[divisible("load")])
    kit.land("landing/counts/1.csv", "id,n\n1,2\n2,3\n3,4\n")
    error = refused(kit, "counts")
    (outcome,) = error.outcomes
    assert (outcome.check, outcome.stage, outcome.status, outcome.failing) == ("n__divisible_by", "load", "fail", 1)
    assert outcome.observed == "1 of 3 rows fail"
    assert outcome.sample == ["3"]
    assert "n__divisible_by: 1 of 3 rows fail" in str(error)


def test_load_level_warn_lands_every_row_and_warns(make_workspace, spec, ingest, check_of):
    kit = kit_with(make_workspace, spec, column_rules=[divisible("load", severity="warn")])
    kit.land("landing/counts/1.csv", "id,n\n1,2\n2,3\n3,4\n")
    report = ingest(kit, "counts")
    assert report.rows_landed == 3 and report.rows_quarantined == 0
    result = check_of(report, "n__divisible_by")
    assert (result["stage"], result["status"], result["failing"]) == ("load", "warn", 1)


def test_load_level_passes_on_good_rows(make_workspace, spec, ingest, check_of):
    kit = kit_with(make_workspace, spec, column_rules=[divisible("load")])
    kit.land("landing/counts/1.csv", "id,n\n1,2\n2,4\n")
    result = check_of(ingest(kit, "counts"), "n__divisible_by")
    assert (result["status"], result["observed"]) == ("pass", "all rows")


def test_table_level_judges_the_whole_table_after_the_commit(make_workspace, spec, ingest, check_of):
    rules = [{"pandera": {"check": "at_most_rows", "module": MODULE, "args": {"limit": 3}, "level": "table"}}]
    kit = kit_with(make_workspace, spec, column_rules=[divisible("table", severity="warn")], table_rules=rules)
    kit.land("landing/counts/1.csv", "id,n\n1,2\n2,4\n")
    first = ingest(kit, "counts")
    assert check_of(first, "at_most_rows")["status"] == "pass"
    assert check_of(first, "n__divisible_by")["status"] == "pass"

    kit.land("landing/counts/2.csv", "id,n\n3,5\n4,6\n")  # the table now has 4 rows, one of them odd
    second = ingest(kit, "counts")
    assert second.rows_landed == 2  # table rules judge what is published; they do not undo the load
    frame = check_of(second, "at_most_rows")
    assert (frame["stage"], frame["status"], frame["observed"]) == ("table", "fail", "the check answered False")
    column = check_of(second, "n__divisible_by")
    assert (column["status"], column["failing"], column["observed"], column["sample"]) == (
        "warn",
        1,
        "1 rows fail",
        ["5"],
    )


def test_a_built_in_pandera_check_needs_no_module(make_workspace, spec, ingest, check_of):
    """`str_length` is not stated in SQL: pandera's polars backend runs it; `str_startswith` is, in SQL."""
    kit = make_workspace(
        sources=[
            spec(
                "codes",
                {"type": "csv", "path": "landing/codes/*.csv"},
                columns=[
                    {"name": "id", "type": "integer"},
                    {
                        "name": "code",
                        "type": "varchar",
                        "checks": [
                            {"pandera": {"check": "str_length", "args": {"min_value": 2, "max_value": 3}}},
                            {"pandera": {"check": "str_startswith", "args": {"string": "A"}}},
                        ],
                    },
                ],
            )
        ]
    )
    kit.land("landing/codes/1.csv", "id,code\n1,AB\n2,A\n3,ABCD\n4,BB\n5,ABC\n")
    report = ingest(kit, "codes")
    assert [row["id"] for row in kit.rows("codes", order_by="id")] == [1, 5]
    assert check_of(report, "code__str_length")["failing"] == 2
    assert check_of(report, "code__str_startswith")["failing"] == 1


def test_an_unregistered_check_is_named_with_the_fix(make_workspace, spec):
    rule = {"pandera": {"check": "no_such_check", "module": MODULE}}
    kit = kit_with(make_workspace, spec, column_rules=[rule])
    kit.land("landing/counts/1.csv", "id,n\n1,2\n")
    with pytest.raises(RuleCompileError, match=r"pandera has no check 'no_such_check'.*register_check_method"):
        kit.ingest("counts")
    assert kit.version("counts") is None


def test_wrong_arguments_are_named(make_workspace, spec):
    rule = {"pandera": {"check": "divisible_by", "module": MODULE, "args": {"by": 2}}}
    kit = kit_with(make_workspace, spec, column_rules=[rule])
    kit.land("landing/counts/1.csv", "id,n\n1,2\n")
    with pytest.raises(RuleCompileError, match=r"check n__divisible_by could not run on n: .*unexpected keyword.*'by'"):
        kit.ingest("counts")


def test_a_pandera_rule_on_a_hashed_pii_column_is_refused(make_workspace, spec):
    """The rules see the hash of a `pii: true` column: a check of its values would judge the hash."""
    rule = {"pandera": {"check": "str_length", "args": {"max_value": 8}}}
    kit = make_workspace(
        sources=[
            spec(
                "people",
                {"type": "csv", "path": "landing/people/*.csv"},
                columns=[
                    {"name": "id", "type": "integer"},
                    {"name": "email", "type": "varchar", "pii": True, "checks": [rule]},
                ],
            )
        ]
    )
    kit.land("landing/people/1.csv", "id,email\n1,a@example.com\n")
    with pytest.raises(RuleCompileError, match=r"check email__str_length: email is PII, hashed at ingestion"):
        kit.ingest("people")
    assert kit.version("people") is None
