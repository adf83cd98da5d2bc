"""Partitioned bronze assets in Dagster, and `foundation backfill` end to end on a real instance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import dagster as dg
import pytest
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.dagster_defs.definitions import bronze_asset_key, ingestion_definitions
from foundation.dagster_defs.ingest_run import run_ingest
from foundation.dagster_defs.instance import dagster_instance
from foundation.dagster_defs.partitions import partitioned_keys

SOURCE = """\
name: readings
description: Readings of the test rig, four a day
owner: data@example.com
schedule: "0 2 * * *"
extract: {type: csv, path: landing/readings/*.csv}
load: {mode: replace}
columns:
  - {name: ts, type: timestamp, required: true}
  - {name: sensor, type: varchar}
  - {name: value, type: double}
partitions: {by: daily, column: ts, start: 2026-01-01}
"""


def readings(days: range, tag: str = "a", hours: range = range(0, 24, 6)) -> str:
    lines = [f"2026-01-{d:02d} {h:02d}:00:00,{tag},{d * 100 + h}" for d in days for h in hours]
    return "ts,sensor,value\n" + "\n".join(lines) + "\n"


@pytest.fixture
def kit(make_workspace):
    kit = make_workspace(files={"landing/readings/all.csv": readings(range(1, 8))})
    kit.write_source(SOURCE, name="readings")
    return kit


def per_day(kit) -> dict[str, list[tuple[str, float]]]:
    rows = kit.query("SELECT strftime(ts, '%Y-%m-%d') AS d, sensor, value FROM bronze.uc__readings ORDER BY ts")
    days: dict[str, list[tuple[str, float]]] = {}
    for row in rows:
        days.setdefault(row["d"], []).append((row["sensor"], row["value"]))
    return days


def test_a_partitioned_source_is_a_partitioned_asset_with_a_latest_partition_schedule(kit):
    workspace = kit.open()
    (source,) = workspace.sources()
    defs = ingestion_definitions(workspace)
    (asset,) = defs.assets
    assert isinstance(asset.partitions_def, dg.DailyPartitionsDefinition)
    assert asset.partitions_def.get_first_partition_key() == "2026-01-01"
    assert partitioned_keys(defs.assets) == [bronze_asset_key(source)]

    (schedule,) = defs.schedules
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 1, 5, 2, tzinfo=UTC), repository_def=defs.get_repository_def()
    )
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-01-04"  # the newest complete day at 02:00 on the 5th


def test_foundation_ingest_points_a_partitioned_source_at_backfill(kit, monkeypatch):
    workspace = kit.open()
    listener = run_ingest(workspace, workspace.sources())
    assert (listener.reports, listener.errors) == ({}, {})
    hint = "daily partitions: foundation backfill uc/readings --from DATE --to DATE"
    assert listener.skipped == {"uc/readings": hint}
    assert kit.version("readings") is None  # nothing loaded

    monkeypatch.setenv("FOUNDATION_WORKSPACE", str(kit.root))
    result = CliRunner().invoke(app, ["ingest", "--json"])
    assert result.exit_code == 0  # not a failure: the source is loaded by partitions
    assert json.loads(result.output)["data"]["skipped"] == listener.skipped


def test_backfill_refuses_an_unpartitioned_source_and_a_bad_date(make_workspace, spec, monkeypatch):
    kit = make_workspace(sources=[spec("plain", {"type": "csv", "path": "landing/*.csv"})], files={})
    kit.write_source(SOURCE, name="readings")
    monkeypatch.setenv("FOUNDATION_WORKSPACE", str(kit.root))
    runner = CliRunner()
    result = runner.invoke(app, ["backfill", "uc/plain", "--from", "2026-01-01", "--to", "2026-01-02"])
    assert result.exit_code == 2
    assert "uc/bronze/plain has no partitions to backfill: declare partitions:" in result.output
    result = runner.invoke(app, ["backfill", "uc/readings", "--from", "01/02/2026", "--to", "x"])
    assert result.exit_code == 2
    assert "'01/02/2026' is not a date: write YYYY-MM-DD" in result.output
    result = runner.invoke(app, ["backfill", "uc/readings", "--from", "2025-01-01", "--to", "2025-12-31"])
    assert result.exit_code == 2
    assert "no partition of uc/readings starts between 2025-01-01 and 2025-12-31" in result.output
    hourly = SOURCE.replace("name: readings", "name: hourly").replace("by: daily", "by: hourly")
    kit.write_source(hourly.replace("start: 2026-01-01", "start: 2026-01-01T00:00"), name="hourly")
    result = runner.invoke(app, ["backfill", "uc", "--from", "2026-01-01", "--to", "2026-01-02"])
    assert result.exit_code == 2
    assert "uc/bronze/hourly, uc/bronze/readings are not partitioned alike: backfill them one at a time" in (
        " ".join(result.output.split())
    )


def foundation(kit, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, as a user types it (the in-process runs rebuild the definitions)."""
    env = {**os.environ, "FOUNDATION_WORKSPACE": str(kit.root)}
    command = [sys.executable, "-m", "foundation.cli.main", *args]
    return subprocess.run(command, cwd=kit.root, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_backfill_lands_exactly_its_partitions_and_a_rerun_replaces_one(kit):
    result = foundation(kit, "backfill", "uc/readings", "--from", "2026-01-02", "--to", "2026-01-04", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["data"]
    assert report["status"] == "COMPLETED_SUCCESS" and report["executed_by"] == "in-process"
    assert report["done"] == report["partitions"] == ["2026-01-02", "2026-01-03", "2026-01-04"]
    assert (report["failed"], report["runs"]) == ([], 3)
    source = {d: rows for d, rows in per_day_of(readings(range(1, 8))).items()}
    assert per_day(kit) == {d: source[d] for d in ("2026-01-02", "2026-01-03", "2026-01-04")}

    # The UI's backfill record, on the workspace's instance, with one run per partition.
    instance = dagster_instance(kit.open())
    (backfill,) = instance.get_backfills()
    assert backfill.backfill_id == report["backfill_id"]
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
    assert sorted(r.tags["dagster/partition"] for r in runs) == report["partitions"]

    # Day 3 changes at the source (2 readings, new values): re-running it replaces it, the others stay as they were.
    changed = readings(range(1, 3)) + readings(range(3, 4), "b", range(0, 24, 12))[len("ts,sensor,value\n") :]
    kit.land("landing/readings/all.csv", changed + readings(range(4, 8))[len("ts,sensor,value\n") :])
    result = foundation(kit, "backfill", "readings", "--from", "2026-01-03", "--to", "2026-01-03")
    assert result.returncode == 0, result.stderr
    assert "1/1 done, 0 failed" in result.stdout
    after = per_day(kit)
    assert after["2026-01-03"] == [("b", 300.0), ("b", 312.0)]
    assert {d: after[d] for d in ("2026-01-02", "2026-01-04")} == {d: source[d] for d in ("2026-01-02", "2026-01-04")}
    assert sorted(after) == ["2026-01-02", "2026-01-03", "2026-01-04"]


def per_day_of(csv_text: str) -> dict[str, list[tuple[str, float]]]:
    days: dict[str, list[tuple[str, float]]] = {}
    for line in csv_text.strip().splitlines()[1:]:
        ts, sensor, value = line.split(",")
        days.setdefault(ts[:10], []).append((sensor, float(value)))
    return days


def test_partition_names_cover_the_dates_given_and_stop_at_now():
    from foundation.dagster_defs.backfill import parse_bound, partition_names

    daily = dg.DailyPartitionsDefinition(start_date="2026-01-01")
    now = datetime(2026, 1, 10, 5, tzinfo=UTC)
    names = partition_names(daily, parse_bound("2025-12-30", False), parse_bound("2026-01-03", True), now)
    assert names == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert partition_names(daily, parse_bound("2026-01-08", False), parse_bound("2026-01-20", True), now) == [
        "2026-01-08",
        "2026-01-09",  # the 10th is not complete at 05:00
    ]
    hourly = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00")
    names = partition_names(hourly, parse_bound("2026-01-02", False), parse_bound("2026-01-02", True), now)
    assert (len(names), names[0], names[-1]) == (24, "2026-01-02-00:00", "2026-01-02-23:00")


@pytest.mark.slow
def test_with_a_daemon_running_the_backfill_is_the_daemons(kit, tmp_path):
    """`foundation daemon` (the real dagster-daemon) on the workspace's instance: the command only launches and
    watches; the daemon's backfill loop submits the runs, which its run launcher executes in their own processes."""
    instance = dagster_instance(kit.open())
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115 - closed in finally
    env = {**os.environ, "FOUNDATION_WORKSPACE": str(kit.root)}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "foundation.cli.main", "daemon"],
        cwd=kit.root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the runs it launches stop with it
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and "BACKFILL" not in instance.get_daemon_heartbeats():
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(2)
        assert "BACKFILL" in instance.get_daemon_heartbeats(), (tmp_path / "daemon.log").read_text()[-3000:]
        # One partition: each run the daemon launches is a process of its own (tens of seconds on a loaded machine).
        result = foundation(kit, "backfill", "uc/readings", "--from", "2026-01-02", "--to", "2026-01-02", "--json")
        assert result.returncode == 0, result.stderr + (tmp_path / "daemon.log").read_text()[-3000:]
        report = json.loads(result.stdout)["data"]
        assert (report["executed_by"], report["status"]) == ("daemon", "COMPLETED_SUCCESS")
        assert report["done"] == ["2026-01-02"]
        assert per_day(kit) == {"2026-01-02": per_day_of(readings(range(1, 8)))["2026-01-02"]}
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        log.close()


def test_foundation_run_leaves_partitioned_assets_out_and_sources_list_shows_them(kit, spec, monkeypatch):
    from foundation.dagster_defs.pipeline_run import run_pipeline

    kit.write_source(spec("plain", {"type": "csv", "path": "landing/readings/*.csv"}))
    summary = run_pipeline(kit.open())
    assert summary.ok, summary.step_errors
    assert kit.count("plain") == 28  # the unpartitioned source landed whole
    assert kit.version("readings") is None  # the partitioned one waits for its partitions

    monkeypatch.setenv("FOUNDATION_WORKSPACE", str(kit.root))
    listed = json.loads(CliRunner().invoke(app, ["sources", "list", "--json"]).output)["data"]
    assert {s["source"]: s["partitions"] for s in listed} == {"plain": None, "readings": "daily"}


@pytest.mark.parametrize(
    ("by", "start", "first"),
    [
        ("monthly", "2026-01-15", "2026-01-01"),
        ("daily", "2026-01-15T10:00", "2026-01-15"),
        ("hourly", "2026-01-15T10:30", "2026-01-15-10:00"),
    ],
)
def test_the_first_partition_is_the_one_holding_start(by, start, first):
    from foundation.dagster_defs.partitions import partitions_definition
    from foundation.specs.partitions import PartitionsSpec

    spec = PartitionsSpec(by=by, start=start, column="ts")
    assert partitions_definition(spec).get_first_partition_key() == first
