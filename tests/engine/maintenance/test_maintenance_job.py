"""The foundation_maintenance Dagster job: scheduled only when `maintenance.schedule` is set, and run in process on a
real lakehouse (a failing table fails the run)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from foundation.dagster_defs import build_definitions

SOURCE = {"type": "csv", "path": "landing/*.csv"}


def small_appends(uri: Path, n: int) -> None:
    for i in range(n):
        write_deltalake(str(uri), pa.table({"x": [i]}), mode="append")


def test_no_schedule_unless_settings_ask(make_workspace: Any, spec: Any) -> None:
    kit = make_workspace(sources=[spec("orders", SOURCE)], files={"landing/a.csv": "id\n1\n"})
    assert [s.name for s in build_definitions(workspace=kit.open()).schedules] == []


def test_the_scheduled_job_compacts_the_lakehouse_and_reports_per_table(make_workspace: Any, spec: Any) -> None:
    kit = make_workspace(
        sources=[spec("orders", SOURCE)],
        files={"landing/a.csv": "id\n1\n"},
        settings={"maintenance": {"schedule": "0 3 * * 0"}},
    )
    defs = build_definitions(workspace=kit.open())
    (schedule,) = [s for s in defs.schedules if s.name == "foundation_maintenance__schedule"]
    assert schedule.cron_schedule == "0 3 * * 0"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    uri = Path(kit.open().lakehouse_root) / "ml" / "uc" / "model" / "api_predictions"
    small_appends(uri, 4)

    result = defs.resolve_job_def("foundation_maintenance").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    totals = result.output_for_node("compact_and_vacuum")
    assert totals["files_compacted"] == 4 and totals["files_after"] == 1
    assert len(DeltaTable(str(uri)).file_uris()) == 1


def test_a_failing_table_fails_the_run(make_workspace: Any, spec: Any) -> None:
    kit = make_workspace(
        sources=[spec("orders", SOURCE)],
        files={"landing/a.csv": "id\n1\n"},
        settings={"maintenance": {"schedule": "@daily", "retention_hours": 1}},  # below the tables' 168 h
    )
    uri = Path(kit.open().lakehouse_root) / "gold" / "uc" / "kpi"
    small_appends(uri, 2)
    shutil.copy(DeltaTable(str(uri)).file_uris()[0], uri / "part-00000-orphan.parquet")
    job = build_definitions(workspace=kit.open()).resolve_job_def("foundation_maintenance")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "gold/uc/kpi" in failure.step_failure_data.error.message
    assert "maintenance.retention_hours" in failure.step_failure_data.error.message
