"""Rules as Dagster asset checks: one check per rule, `error` checks block downstream assets, `warn` ones don't;
check evaluations carry the counts; a `references` rule makes the referenced source an upstream asset.
"""

from __future__ import annotations

import dagster as dg
import pytest

from foundation.dagster_defs import build_definitions

TRUCKS = dg.AssetKey(["uc", "bronze", "trucks"])
TRIPS = dg.AssetKey(["uc", "bronze", "trips"])


def fleet(make_workspace, spec, severity: str, trucks_csv: str):
    kit = make_workspace(
        sources=[
            spec(
                "trucks",
                {"type": "csv", "path": "landing/trucks.csv"},
                checks=[{"unique": ["truck_id"], "severity": severity}],
            ),
            spec(
                "trips",
                {"type": "csv", "path": "landing/trips.csv"},
                checks=[{"references": {"column": "truck_id", "source": "trucks"}}],
            ),
        ]
    )
    kit.land("landing/trucks.csv", trucks_csv)
    kit.land("landing/trips.csv", "trip_id,truck_id\n1,T1\n2,T2\n")
    return kit


def materialize(kit) -> dg.ExecuteInProcessResult:
    """Every source of the workspace in one in-process run; every load that lands must reconcile."""
    defs = build_definitions(kit.root)
    result = dg.materialize(
        list(defs.assets), resources=defs.resources, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        assert metadata["rows_reconcile"].value is True, event.asset_key
        read, landed, quarantined = (metadata[k].value for k in ("rows_read", "rows_landed", "rows_quarantined"))
        assert read == landed + quarantined  # these tests land no stale, superseded or dropped rows
    return result


def materialized(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {e.asset_key for e in result.get_asset_materialization_events()}


def started_steps(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}


def evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[dg.AssetKey, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}


DUPLICATED = "truck_id,kind\nT1,van\nT1,rigid\nT2,van\n"


def test_check_specs_follow_the_rules(make_workspace, spec):
    kit = fleet(make_workspace, spec, "error", DUPLICATED)
    defs = build_definitions(kit.root)
    specs = {(s.asset_key, s.name): s for asset in defs.assets for s in asset.check_specs}
    assert set(specs) == {
        (TRUCKS, "rows_reconcile"),
        (TRUCKS, "rows_parsed_and_typed"),
        (TRUCKS, "unique__truck_id"),
        (TRUCKS, "schema_contract"),
        (TRIPS, "rows_reconcile"),
        (TRIPS, "rows_parsed_and_typed"),
        (TRIPS, "truck_id__references"),
        (TRIPS, "schema_contract"),
    }
    assert specs[(TRUCKS, "unique__truck_id")].blocking is True
    assert specs[(TRUCKS, "unique__truck_id")].description == "(truck_id) unique across the table"
    assert specs[(TRUCKS, "unique__truck_id")].metadata == {"stage": "table", "severity": "error"}
    assert specs[(TRUCKS, "rows_parsed_and_typed")].blocking is False
    assert specs[(TRUCKS, "schema_contract")].blocking is False  # evolve
    trips = next(a for a in defs.assets if TRIPS in a.keys)
    assert trips.asset_deps[TRIPS] == {TRUCKS}


def test_warn_checks_are_not_blocking(make_workspace, spec):
    kit = fleet(make_workspace, spec, "warn", DUPLICATED)
    defs = build_definitions(kit.root)
    (unique,) = [s for a in defs.assets for s in a.check_specs if s.name == "unique__truck_id"]
    assert unique.blocking is False


def test_a_failing_error_check_blocks_downstream_assets(make_workspace, spec):
    kit = fleet(make_workspace, spec, "error", DUPLICATED)
    result = materialize(kit)
    assert not result.success
    assert materialized(result) == {TRUCKS}  # the data landed; what depends on it waits
    assert "uc__bronze__trips" not in started_steps(result)
    assert kit.version("trips") is None
    unique = evaluations(result)[(TRUCKS, "unique__truck_id")]
    assert (unique.passed, unique.severity) == (False, dg.AssetCheckSeverity.ERROR)
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["uc__bronze__trucks"]
    assert "unique__truck_id" in failures[0].step_failure_data.error.message


def test_a_failing_warn_check_does_not_block(make_workspace, spec):
    kit = fleet(make_workspace, spec, "warn", DUPLICATED)
    result = materialize(kit)
    assert result.success
    assert materialized(result) == {TRUCKS, TRIPS}
    checks = evaluations(result)
    assert (checks[(TRUCKS, "unique__truck_id")].passed, checks[(TRUCKS, "unique__truck_id")].severity) == (
        False,
        dg.AssetCheckSeverity.WARN,
    )
    assert checks[(TRIPS, "truck_id__references")].passed is True


def test_passing_error_checks_let_everything_run(make_workspace, spec):
    kit = fleet(make_workspace, spec, "error", "truck_id,kind\nT1,van\nT2,van\n")
    result = materialize(kit)
    assert result.success
    assert materialized(result) == {TRUCKS, TRIPS}
    assert all(e.passed for e in result.get_asset_check_evaluations())


def test_check_evaluations_carry_counts_and_samples(make_workspace, spec):
    kit = fleet(make_workspace, spec, "warn", DUPLICATED + "T2,rigid\nT3,van\n")
    result = materialize(kit)
    checks = evaluations(result)
    unique = {k: v.value for k, v in checks[(TRUCKS, "unique__truck_id")].metadata.items()}
    assert unique == {"failing": 2, "stage": "table", "observed": "2 duplicated keys", "sample": ["T1 (x2)", "T2 (x2)"]}
    reconcile = {k: v.value for k, v in checks[(TRUCKS, "rows_reconcile")].metadata.items()}
    assert reconcile["observed"] == "read 5 = landed 5 + quarantined 0 + dropped 0 + stale 0 + superseded 0"
    assert reconcile["failing"] == 0
    trucks = next(e for e in result.get_asset_materialization_events() if e.asset_key == TRUCKS)
    metadata = trucks.materialization.metadata
    assert (metadata["rows_read"].value, metadata["rows_landed"].value, metadata["rows_reconcile"].value) == (
        5,
        5,
        True,
    )


def test_a_refused_load_reports_its_failed_check_and_blocks(make_workspace, spec):
    """A load rule refuses the load: the asset fails, its check evaluation says why, downstream waits."""
    kit = make_workspace(
        sources=[
            spec(
                "trucks",
                {"type": "csv", "path": "landing/trucks.csv"},
                checks=[{"completeness": {"min_rows": 10}}],
            ),
            spec(
                "trips",
                {"type": "csv", "path": "landing/trips.csv"},
                checks=[{"references": {"column": "truck_id", "source": "trucks"}}],
            ),
        ]
    )
    kit.land("landing/trucks.csv", "truck_id\nT1\n")
    kit.land("landing/trips.csv", "trip_id,truck_id\n1,T1\n")
    result = materialize(kit)
    assert not result.success
    assert materialized(result) == set()
    completeness = evaluations(result)[(TRUCKS, "completeness")]
    assert completeness.passed is False
    assert completeness.metadata["observed"].value == "1 rows landed, fewer than 10"
    assert kit.version("trucks") is None


@pytest.mark.parametrize(
    ("freshness", "expected"),
    [
        ({"warn_after": "1h", "error_after": "6h"}, ("6:00:00", "1:00:00")),
        ({"warn_after": "1h"}, None),  # no error threshold: no policy of its own, and the schedule is manual
    ],
)
def test_freshness_policy_from_a_last_load_rule(freshness, expected, make_workspace, spec):
    kit = make_workspace(
        sources=[spec("trucks", {"type": "csv", "path": "landing/trucks.csv"}, checks=[{"freshness": freshness}])]
    )
    defs = build_definitions(kit.root)
    (asset,) = defs.assets
    policy = asset.specs_by_key[TRUCKS].freshness_policy
    if expected is None:
        assert policy is None
    else:
        assert (str(policy.fail_window.to_timedelta()), str(policy.warn_window.to_timedelta())) == expected


def test_a_rerun_with_nothing_new_succeeds_and_reevaluates_freshness(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "pings",
                {"type": "csv", "path": "landing/pings.csv"},
                load={"mode": "append"},
                checks=[{"freshness": {"column": "ts", "warn_after": "1h"}}],
            )
        ]
    )
    kit.land("landing/pings.csv", "truck_id,ts\nT1,2020-01-01 00:00:00\n")
    defs = build_definitions(kit.root)
    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize(list(defs.assets), resources=defs.resources, instance=instance, raise_on_error=False)
    assert first.success
    second = dg.materialize(list(defs.assets), resources=defs.resources, instance=instance, raise_on_error=False)
    assert second.success
    assert evaluations(second)[(dg.AssetKey(["uc", "bronze", "pings"]), "freshness__ts")].passed is False
