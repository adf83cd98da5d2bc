"""Table rules (SQL on DuckDB over the new Delta snapshot, after the commit): uniqueness across loads, freshness
of an event-time column and of the last load, references to another source's table.

They judge what is published, so a failing one reports `fail` (error) or `warn` without undoing the load.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from foundation.engine.quality.checks import declared_checks
from foundation.engine.quality.gate import evaluate_table_outcomes
from foundation.engine.quality.row_rules import RuleCompileError


def trucks(spec, checks=None, columns=None, mode: str = "append"):
    return spec(
        "trucks",
        {"type": "csv", "path": "landing/trucks/*.csv"},
        load={"mode": mode},
        columns=columns or [],
        checks=checks or [],
    )


# --- unique -------------------------------------------------------------------------------------------------


def test_unique_key_across_loads(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[trucks(spec, checks=[{"unique": ["truck_id"]}])])
    kit.land("landing/trucks/1.csv", "truck_id,kind\nT1,van\nT2,rigid\nT3,van\n")
    first = ingest(kit, "trucks")
    result = check_of(first, "unique__truck_id")
    assert (result["status"], result["failing"], result["observed"], result["stage"]) == (
        "pass",
        0,
        "0 duplicated keys",
        "table",
    )

    kit.land("landing/trucks/2.csv", "truck_id,kind\nT3,tractor\nT4,van\n")  # T3 again, in another file
    second = ingest(kit, "trucks")
    assert second.rows_landed == 2  # table rules judge what is published; they do not undo the load
    result = check_of(second, "unique__truck_id")
    assert (result["passed"], result["status"], result["failing"]) == (False, "fail", 1)
    assert result["sample"] == ["T3 (x2)"]
    assert kit.count("trucks") == 5


def test_composite_unique_key(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[trucks(spec, checks=[{"unique": ["truck_id", "day"], "severity": "warn"}])])
    kit.land("landing/trucks/1.csv", "truck_id,day,km\nT1,1,10\nT1,2,20\nT2,1,5\nT1,2,30\nT1,2,31\nT2,1,6\n")
    result = check_of(ingest(kit, "trucks"), "unique__truck_id__day")
    assert (result["status"], result["failing"]) == ("warn", 2)
    assert result["sample"] == ["T1, 2 (x3)", "T2, 1 (x2)"]  # most duplicated first


def test_column_unique_true(make_workspace, spec, ingest, check_of):
    columns = [{"name": "truck_id", "type": "varchar", "checks": [{"unique": True}]}, {"name": "kind"}]
    kit = make_workspace(sources=[trucks(spec, columns=columns)])
    kit.land("landing/trucks/1.csv", "truck_id,kind\nT1,van\nT2,rigid\n")
    assert check_of(ingest(kit, "trucks"), "truck_id__unique")["status"] == "pass"
    kit.land("landing/trucks/2.csv", "truck_id,kind\nT2,van\nT9,van\nT9,rigid\n")
    result = check_of(ingest(kit, "trucks"), "truck_id__unique")
    assert (result["status"], result["failing"], sorted(result["sample"])) == ("fail", 2, ["T2 (x2)", "T9 (x2)"])


def test_unique_on_an_unknown_column_is_refused_before_the_commit(make_workspace, spec):
    kit = make_workspace(sources=[trucks(spec, checks=[{"unique": ["truck"]}])])
    kit.land("landing/trucks/1.csv", "truck_id,kind\nT1,van\n")
    with pytest.raises(RuleCompileError, match="check unique__truck: column truck is not in the landed data"):
        kit.ingest("trucks")
    assert kit.version("trucks") is None


# --- freshness of an event-time column ------------------------------------------------------------------------


def pings(spec, freshness):
    return spec(
        "pings",
        {"type": "csv", "path": "landing/pings/*.csv"},
        load={"mode": "replace"},
        columns=[{"name": "truck_id", "type": "varchar"}, {"name": "ts", "type": "timestamp"}],
        checks=[{"freshness": freshness}],
    )


def ping_rows(newest_age: timedelta) -> str:
    """Three pings, the newest `newest_age` ago (UTC, written without a zone)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    times = [now - newest_age - timedelta(hours=h) for h in (5, 1, 0)]
    return "truck_id,ts\n" + "".join(f"T1,{t:%Y-%m-%d %H:%M:%S}\n" for t in times)


@pytest.mark.parametrize(
    ("age", "status", "severity", "observed_age"),
    [
        (timedelta(minutes=10), "pass", "error", "0h 10m"),
        (timedelta(hours=3), "warn", "warn", "3h 0m"),
        (timedelta(hours=7), "fail", "error", "7h 0m"),
        (timedelta(days=2, hours=1), "fail", "error", "2d 1h 0m"),
    ],
)
def test_freshness_of_an_event_time_column(age, status, severity, observed_age, make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[pings(spec, {"column": "ts", "warn_after": "2h", "error_after": "6h"})])
    kit.land("landing/pings/1.csv", ping_rows(age))
    result = check_of(ingest(kit, "pings"), "freshness__ts")
    assert (result["status"], result["severity"], result["stage"]) == (status, severity, "table")
    assert result["observed"].startswith(f"age {observed_age} (newest ")


def test_freshness_with_only_a_warn_threshold_is_a_warn_check(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[pings(spec, {"column": "ts", "warn_after": "30m"})])
    kit.land("landing/pings/1.csv", ping_rows(timedelta(days=30)))
    result = check_of(ingest(kit, "pings"), "freshness__ts")
    assert (result["status"], result["severity"]) == ("warn", "warn")


def test_freshness_of_a_column_with_a_time_zone(make_workspace, spec, ingest, check_of):
    source = pings(spec, {"column": "ts", "warn_after": "2h", "error_after": "6h"})
    source["columns"][1]["type"] = "timestamptz"
    kit = make_workspace(sources=[source])
    newest = (datetime.now(UTC) - timedelta(hours=3)).astimezone(timezone(timedelta(hours=-5)))
    kit.land("landing/pings/1.csv", f"truck_id,ts\nT1,{newest.isoformat()}\n")  # e.g. 2026-01-05T04:00:00-05:00
    result = check_of(ingest(kit, "pings"), "freshness__ts")
    assert result["status"] == "warn"
    assert result["observed"].startswith("age 3h 0m")


@pytest.mark.parametrize(("days_old", "status"), [(0, "pass"), (3, "warn"), (10, "fail")])
def test_freshness_of_a_date_column_counts_from_the_start_of_the_day(
    days_old, status, make_workspace, spec, ingest, check_of
):
    source = pings(spec, {"column": "day", "warn_after": "2d", "error_after": "7d"})
    source["columns"] = [{"name": "truck_id", "type": "varchar"}, {"name": "day", "type": "date"}]
    kit = make_workspace(sources=[source])
    newest = datetime.now(UTC).date() - timedelta(days=days_old)
    kit.land("landing/pings/1.csv", f"truck_id,day\nT1,{newest - timedelta(days=1)}\nT1,{newest}\n")
    result = check_of(ingest(kit, "pings"), "freshness__day")
    assert result["status"] == status
    assert result["observed"].startswith(f"age {days_old}d " if days_old else "age ")
    assert result["observed"].endswith(f"(newest {newest:%Y-%m-%d} 00:00 UTC)")


def test_freshness_of_a_column_that_is_not_a_time_is_refused_before_the_commit(make_workspace, spec):
    source = pings(spec, {"column": "ts", "warn_after": "2h"})
    source["columns"][1]["type"] = "varchar"
    kit = make_workspace(sources=[source])
    kit.land("landing/pings/1.csv", ping_rows(timedelta(0)))
    with pytest.raises(RuleCompileError, match="freshness needs a date or timestamp column, but ts is string"):
        kit.ingest("pings")
    assert kit.version("pings") is None


def test_freshness_of_an_empty_table_fails(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[pings(spec, {"column": "ts", "warn_after": "2h", "error_after": "6h"})])
    kit.land("landing/pings/1.csv", "truck_id,ts\n")
    result = check_of(ingest(kit, "pings"), "freshness__ts")
    assert (result["status"], result["observed"]) == ("fail", "no data")


# --- freshness of the last load ----------------------------------------------------------------------------------


def test_freshness_of_the_last_load(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[pings(spec, {"warn_after": "1h", "error_after": "1d"})])
    kit.land("landing/pings/1.csv", ping_rows(timedelta(days=365)))  # old events, but a load just now
    report = ingest(kit, "pings")
    result = check_of(report, "freshness__last_load")
    assert (result["status"], result["observed"][:10]) == ("pass", "age 0h 0m ")
    assert result["description"] == "age of the last successful load: warn after 1h, error after 1d"

    # later on (what `foundation quality` evaluates): the same load, judged at later times
    source = kit.source("pings")
    checks = [c for c in declared_checks(source.spec) if c.stage == "table"]
    loaded_at = datetime.now(UTC)
    for later, status in [
        (timedelta(minutes=59), "pass"),
        (timedelta(hours=2), "warn"),
        (timedelta(days=1, hours=1), "fail"),
    ]:
        (outcome,) = evaluate_table_outcomes(kit.open(), source, checks, loaded_at + later, loaded_at)
        assert outcome.status == status, (later, outcome)
    (never,) = evaluate_table_outcomes(kit.open(), source, checks, loaded_at, None)
    assert (never.status, never.observed) == ("fail", "no data")


# --- references -----------------------------------------------------------------------------------------------


def fleet(make_workspace, spec, severity: str = "error", to_column: str | None = None):
    reference = {"column": "truck_id", "source": "trucks"}
    if to_column:
        reference["to_column"] = to_column
    return make_workspace(
        sources=[
            trucks(spec),
            spec(
                "trips",
                {"type": "csv", "path": "landing/trips/*.csv"},
                checks=[{"references": reference, "severity": severity}],
            ),
        ]
    )


def test_references_pass_when_every_value_has_a_parent(make_workspace, spec, ingest, check_of):
    kit = fleet(make_workspace, spec)
    kit.land("landing/trucks/1.csv", "truck_id,kind\nT1,van\nT2,rigid\n")
    kit.land("landing/trips/1.csv", "trip_id,truck_id\n1,T1\n2,T2\n3,T1\n4,\n")  # a null has nothing to reference
    ingest(kit, "trucks")
    result = check_of(ingest(kit, "trips"), "truck_id__references")
    assert (result["status"], result["failing"], result["observed"]) == ("pass", 0, "0 values without a match")


def test_references_list_the_missing_parent_values(make_workspace, spec, ingest, check_of):
    kit = fleet(make_workspace, spec)
    kit.land("landing/trucks/1.csv", "truck_id,kind\nT1,van\nT2,rigid\n")
    kit.land("landing/trips/1.csv", "trip_id,truck_id\n1,T1\n2,T7\n3,T9\n4,T7\n5,T2\n")
    ingest(kit, "trucks")
    report = ingest(kit, "trips")
    assert report.rows_landed == 5
    result = check_of(report, "truck_id__references")
    assert (result["passed"], result["status"], result["failing"]) == (False, "fail", 2)
    assert result["sample"] == ["T7", "T9"]
    assert result["observed"] == "2 values without a match"
    assert result["description"] == "truck_id values exist in trucks.truck_id"


def test_references_to_another_column_name_warn(make_workspace, spec, ingest, check_of):
    kit = fleet(make_workspace, spec, severity="warn", to_column="id")
    kit.land("landing/trucks/1.csv", "id,kind\nT1,van\n")
    kit.land("landing/trips/1.csv", "trip_id,truck_id\n1,T1\n2,T3\n")
    ingest(kit, "trucks")
    result = check_of(ingest(kit, "trips"), "truck_id__references")
    assert (result["status"], result["sample"]) == ("warn", ["T3"])


def test_references_to_a_source_not_landed_yet_fail(make_workspace, spec, ingest, check_of):
    kit = fleet(make_workspace, spec)
    kit.land("landing/trips/1.csv", "trip_id,truck_id\n1,T1\n")
    result = check_of(ingest(kit, "trips"), "truck_id__references")
    assert (result["status"], result["observed"]) == ("fail", "trucks has not landed yet")


def test_references_to_a_missing_parent_column_fail_the_check_not_the_load(make_workspace, spec, ingest, check_of):
    """The parent's columns are known only after the commit: a wrong `to_column` is a failed check with its cause."""
    kit = fleet(make_workspace, spec, to_column="truck_no")
    kit.land("landing/trucks/1.csv", "truck_id,kind\nT1,van\n")
    kit.land("landing/trips/1.csv", "trip_id,truck_id\n1,T1\n")
    ingest(kit, "trucks")
    report = ingest(kit, "trips")
    assert report.rows_landed == 1
    result = check_of(report, "truck_id__references")
    assert result["status"] == "fail"
    assert result["observed"].startswith("could not run: Binder Error")
    assert "truck_no" in result["observed"]


def test_references_across_use_cases(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[trucks(spec)], usecase="fleet")
    kit.write_source(
        spec(
            "repairs",
            {"type": "csv", "path": "landing/repairs/*.csv"},
            checks=[{"references": {"column": "truck_id", "source": "fleet/trucks"}}],
        ),
        usecase="workshop",
    )
    kit.land("landing/trucks/1.csv", "truck_id,kind\nT1,van\n")
    kit.land("landing/repairs/1.csv", "repair_id,truck_id\n1,T1\n2,T5\n")
    ingest(kit, "trucks")
    report = ingest(kit, "repairs", usecase="workshop")
    result = check_of(report, "truck_id__references")
    assert (result["status"], result["sample"]) == ("fail", ["T5"])
