"""Load rules (decided from the counts of the whole load, before the Delta commit): completeness (min rows, max
null % per column), a column's max null %, and the change in rows landed against the previous load.

An `error` load rule refuses the load: QualityGateError, the Delta version unchanged, nothing quarantined;
a `warn` one lets it land and reports a warning.
"""

from __future__ import annotations

from typing import Any

import pytest

from foundation.engine.quality.row_rules import RuleCompileError


def readings(spec, checks: list[dict[str, Any]] | None = None, temp_checks: list[dict[str, Any]] | None = None):
    return spec(
        "readings",
        {"type": "csv", "path": "landing/readings/*.csv"},
        load={"mode": "append"},
        columns=[
            {"name": "id", "type": "integer"},
            {"name": "temp", "type": "double", "checks": temp_checks or []},
        ],
        checks=checks or [],
    )


def rows(ids: range, null_every: int = 0) -> str:
    """`id,temp` lines; every `null_every`-th temp is empty."""
    return "id,temp\n" + "".join(f"{i},{'' if null_every and i % null_every == 0 else i * 1.5}\n" for i in ids)


# --- completeness: min_rows ---------------------------------------------------------------------------------


def test_min_rows_passes_when_enough_rows_land(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[readings(spec, checks=[{"completeness": {"min_rows": 3}}])])
    kit.land("landing/readings/1.csv", rows(range(1, 4)))
    report = ingest(kit, "readings")
    result = check_of(report, "completeness")
    assert (result["status"], result["observed"], result["stage"]) == ("pass", "3 rows landed", "load")


def test_min_rows_error_refuses_a_short_load(make_workspace, spec, ingest, refused):
    kit = make_workspace(sources=[readings(spec, checks=[{"completeness": {"min_rows": 3}}])])
    kit.land("landing/readings/1.csv", rows(range(1, 5)))
    first = ingest(kit, "readings")
    kit.land("landing/readings/2.csv", rows(range(5, 7)))
    error = refused(kit, "readings")
    assert "uc/readings: load refused before publishing: completeness: 2 rows landed, fewer than 3" in str(error)
    (outcome,) = error.outcomes
    assert (outcome.check, outcome.status, outcome.failing) == ("completeness", "fail", 1)
    assert kit.version("readings") == first.delta_version
    assert [r["id"] for r in kit.rows("readings", order_by="id")] == [1, 2, 3, 4]


def test_min_rows_refuses_rows_that_only_pass_before_the_rules(make_workspace, spec, refused):
    """Rows quarantined by a row rule do not count as landed: 3 read, 1 lands, min_rows 2 refuses."""
    kit = make_workspace(sources=[readings(spec, checks=[{"completeness": {"min_rows": 2}}], temp_checks=[{"max": 5}])])
    kit.land("landing/readings/1.csv", "id,temp\n1,1\n2,50\n3,60\n")
    error = refused(kit, "readings")
    assert "1 rows landed, fewer than 2" in str(error)
    assert kit.version("readings") is None  # a refused first load leaves no table at all


def test_min_rows_warn_lets_the_load_land(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[readings(spec, checks=[{"completeness": {"min_rows": 3}, "severity": "warn"}])])
    kit.land("landing/readings/1.csv", rows(range(1, 3)))
    report = ingest(kit, "readings")
    assert report.rows_landed == 2
    result = check_of(report, "completeness")
    assert (result["status"], result["observed"]) == ("warn", "2 rows landed, fewer than 3")


# --- completeness: max_null_percent per column ---------------------------------------------------------------


def test_completeness_max_null_percent_passes_at_the_limit(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[readings(spec, checks=[{"completeness": {"max_null_percent": {"temp": 25}}}])])
    kit.land("landing/readings/1.csv", rows(range(1, 9), null_every=4))  # 2 of 8 null: exactly 25%
    report = ingest(kit, "readings")
    assert check_of(report, "completeness")["status"] == "pass"


def test_completeness_max_null_percent_error_refuses_the_load(make_workspace, spec, refused):
    kit = make_workspace(sources=[readings(spec, checks=[{"completeness": {"max_null_percent": {"temp": 25}}}])])
    kit.land("landing/readings/1.csv", rows(range(1, 10), null_every=3))  # 3 of 9 null: 33.33%
    error = refused(kit, "readings")
    assert "completeness: temp 33.33% null > 25%" in str(error)


def test_completeness_max_null_percent_warn_lands(make_workspace, spec, ingest, check_of):
    kit = make_workspace(
        sources=[readings(spec, checks=[{"completeness": {"max_null_percent": {"temp": 25}}, "severity": "warn"}])]
    )
    kit.land("landing/readings/1.csv", rows(range(1, 10), null_every=3))
    report = ingest(kit, "readings")
    assert report.rows_landed == 9
    result = check_of(report, "completeness")
    assert (result["status"], result["observed"], result["failing"]) == ("warn", "temp 33.33% null > 25%", 1)


def test_completeness_on_an_unknown_column_is_refused(make_workspace, spec):
    kit = make_workspace(sources=[readings(spec, checks=[{"completeness": {"max_null_percent": {"tmp": 5}}}])])
    kit.land("landing/readings/1.csv", rows(range(1, 4)))
    with pytest.raises(RuleCompileError, match="check completeness: column tmp is not in the landed data"):
        kit.ingest("readings")
    assert kit.version("readings") is None


# --- a column's max_null_percent ---------------------------------------------------------------------------------


def test_column_max_null_percent_passes(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[readings(spec, temp_checks=[{"max_null_percent": 10}])])
    kit.land("landing/readings/1.csv", rows(range(1, 11), null_every=10))  # 1 of 10: 10%
    report = ingest(kit, "readings")
    result = check_of(report, "temp__max_null_percent")
    assert (result["status"], result["observed"], result["failing"]) == ("pass", "10.00% null", 1)


def test_column_max_null_percent_error_refuses_the_load(make_workspace, spec, ingest, refused):
    kit = make_workspace(sources=[readings(spec, temp_checks=[{"max_null_percent": 10}])])
    kit.land("landing/readings/1.csv", rows(range(1, 11)))
    first = ingest(kit, "readings")
    kit.land("landing/readings/2.csv", rows(range(11, 21), null_every=5))  # 2 of 10: 20%
    error = refused(kit, "readings")
    assert "temp__max_null_percent: 20.00% null" in str(error)
    assert kit.version("readings") == first.delta_version
    assert kit.count("readings") == 10


def test_column_max_null_percent_warn_lands(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[readings(spec, temp_checks=[{"max_null_percent": 10, "severity": "warn"}])])
    kit.land("landing/readings/1.csv", rows(range(1, 11), null_every=5))
    report = ingest(kit, "readings")
    assert kit.count("readings") == 10
    result = check_of(report, "temp__max_null_percent")
    assert (result["status"], result["observed"], result["failing"]) == ("warn", "20.00% null", 2)


# --- row_count_change ----------------------------------------------------------------------------------------------


def test_row_count_change_against_the_previous_load(make_workspace, spec, ingest, refused, check_of):
    kit = make_workspace(sources=[readings(spec, checks=[{"row_count_change": {"max_percent": 50}}])])
    kit.land("landing/readings/1.csv", rows(range(1, 11)))
    first = ingest(kit, "readings")
    assert check_of(first, "row_count_change")["observed"] == "no previous load to compare with"
    assert check_of(first, "row_count_change")["status"] == "pass"

    kit.land("landing/readings/2.csv", rows(range(11, 13)))  # 2 rows against 10: -80%
    error = refused(kit, "readings")
    assert "row_count_change: 10 -> 2 rows (80.0%)" in str(error)
    assert kit.version("readings") == first.delta_version

    (kit.root / "landing/readings/2.csv").unlink()
    kit.land("landing/readings/3.csv", rows(range(13, 20)))  # 7 against the last landed 10: -30%
    third = ingest(kit, "readings")
    result = check_of(third, "row_count_change")
    assert (result["status"], result["observed"]) == ("pass", "10 -> 7 rows (30.0%)")
    assert kit.count("readings") == 17


def test_row_count_change_warn_lands_a_far_smaller_load(make_workspace, spec, ingest, check_of):
    kit = make_workspace(
        sources=[readings(spec, checks=[{"row_count_change": {"max_percent": 50}, "severity": "warn"}])]
    )
    kit.land("landing/readings/1.csv", rows(range(1, 11)))
    ingest(kit, "readings")
    kit.land("landing/readings/2.csv", rows(range(11, 12)))
    report = ingest(kit, "readings")
    result = check_of(report, "row_count_change")
    assert (result["status"], result["observed"]) == ("warn", "10 -> 1 rows (90.0%)")
    assert kit.count("readings") == 11


def test_row_count_change_in_replace_mode_compares_whole_loads(make_workspace, spec, ingest, refused, check_of):
    source = readings(spec, checks=[{"row_count_change": {"max_percent": 20}}])
    kit = make_workspace(sources=[{**source, "load": {"mode": "replace"}}])
    kit.land("landing/readings/1.csv", rows(range(1, 11)))
    ingest(kit, "readings")
    kit.land("landing/readings/1.csv", rows(range(1, 12)))  # 11 against 10: +10%
    assert check_of(ingest(kit, "readings"), "row_count_change")["observed"] == "10 -> 11 rows (10.0%)"
    kit.land("landing/readings/1.csv", rows(range(1, 20)))  # 19 against 11: +72.7%
    error = refused(kit, "readings")
    assert "11 -> 19 rows (72.7%)" in str(error)
    assert kit.count("readings") == 11
