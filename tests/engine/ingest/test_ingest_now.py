"""`foundation ingest` loads outside a Dagster run, then records each load in the workspace's Dagster instance: the
UI (which reads the instance's event log) shows the materialisation and every check's result, as after a run."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from foundation.dagster_defs.definitions import bronze_asset_key
from foundation.dagster_defs.ingest_run import in_reference_order, ingest_now
from foundation.dagster_defs.instance import dagster_instance

CSV = "id,temp\n1,20.5\n2,21.0\n3,250.0\n"
COLUMNS = [
    {"name": "id", "type": "integer", "required": True},
    # warn: the 250.0 row lands and the check fails; an error rule would quarantine it
    {"name": "temp", "type": "double", "checks": [{"between": [-40, 200], "severity": "warn"}]},
]


def _latest_checks(instance, key: dg.AssetKey, names: list[str]) -> dict[str, str]:
    keys = [dg.AssetCheckKey(key, name) for name in names]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return {k.name: record.status.value for k, record in latest.items()}


def test_loads_are_recorded_in_the_instance_without_a_run(make_workspace, spec) -> None:
    kit = make_workspace(
        sources=[
            spec("readings", {"type": "csv", "path": "landing/r.csv"}, columns=COLUMNS),
            spec("refused", {"type": "csv", "path": "landing/r.csv"}, columns=COLUMNS, on_invalid_rows="fail",
                 checks=[{"completeness": {"min_rows": 10}}]),
        ],
        files={"landing/r.csv": CSV},
    )  # fmt: skip
    workspace = kit.open()
    sources = workspace.select_sources(None)
    result = ingest_now(workspace, sources)
    readings, refused = (next(s for s in sources if s.name == n) for n in ("readings", "refused"))
    assert result.reports[readings.key].rows_landed == 3
    assert refused.key in result.errors and not result.ok(sources)

    instance = dagster_instance(workspace)
    assert instance.get_runs_count() == 0  # no run: the loads ran outside Dagster
    landed = instance.get_latest_materialization_event(bronze_asset_key(readings))
    assert landed is not None
    metadata = landed.asset_materialization.metadata
    assert metadata["rows_landed"].value == 3 and metadata["load_id"].value == result.reports[readings.key].load_id
    checks = _latest_checks(instance, bronze_asset_key(readings), ["temp__between", "rows_parsed_and_typed"])
    assert checks == {"temp__between": "FAILED", "rows_parsed_and_typed": "SUCCEEDED"}

    assert instance.get_latest_materialization_event(bronze_asset_key(refused)) is None  # nothing landed
    assert _latest_checks(instance, bronze_asset_key(refused), ["completeness"]) == {"completeness": "FAILED"}


def test_the_first_row_does_not_wait_for_dagster() -> None:
    """What `foundation ingest` imports before its first load: the loads' modules, not Dagster (0.5 s)."""
    imports = "import foundation.cli.ingest_command, foundation.dagster_defs.ingest_run"
    code = f"import sys; {imports}; print('dagster' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "False"


def test_a_source_loads_after_the_sources_its_references_rule_reads(make_workspace, spec) -> None:
    """As a Dagster run orders the assets: named first on the command line, `readings` still loads after `units`."""
    kit = make_workspace(
        sources=[
            spec("readings", {"type": "csv", "path": "landing/r.csv"}, columns=COLUMNS,
                 checks=[{"references": {"column": "id", "source": "units"}}]),
            spec("units", {"type": "csv", "path": "landing/u.csv"}, columns=COLUMNS[:1]),
        ],
        files={"landing/r.csv": CSV, "landing/u.csv": "id\n1\n2\n3\n"},
    )  # fmt: skip
    workspace = kit.open()
    by_name = {s.name: s for s in workspace.select_sources(None)}
    selected = [by_name["readings"], by_name["units"]]
    assert [s.name for s in in_reference_order(selected)] == ["units", "readings"]
    assert [s.name for s in in_reference_order([by_name["readings"]])] == ["readings"]  # units not selected

    result = ingest_now(workspace, selected)
    assert result.ok(selected), result.errors
    checks = _latest_checks(dagster_instance(workspace), bronze_asset_key(by_name["readings"]), ["id__references"])
    assert checks == {"id__references": "SUCCEEDED"}
