"""Runs that spread (issue 19 item 2): every run the platform starts carries its use case, the production instance
queues runs with a per-use-case limit, and Dagster's own queued-run daemon, driven here in process, keeps to it
while ten sources of two use cases land in parallel runs on the multiprocess executor, one of them failing alone.

The launcher is Dagster's MockedRunLauncher (it records a dequeued run and leaves it STARTING): the test then
executes each dequeued run itself, so that runs stay in progress across daemon iterations as they would in their
own processes. Kubernetes (one pod per run) cannot run here: the Helm values are checked as configuration only.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._utils.hosted_user_process import recon_job_from_origin

from foundation.core.workspace import WORKSPACE_ENV, Workspace
from foundation.dagster_defs import build_definitions
from foundation.dagster_defs.backfill import DEFS_MODULE, launch_backfill
from foundation.dagster_defs.instance import (
    USECASE_TAG,
    instance_config,
    prepare_home,
    run_queue_config,
    usecase_tags,
)
from foundation.dagster_defs.keys import bronze_asset_key
from foundation.engine.lakehouse.catalog import register_bronze

INFRA = Path(__file__).resolve().parents[2] / "infra"
ROWS = 3  # rows in each landed file
IN_PROGRESS = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)


def _source(folder: Path, name: str, extra: str = "", path: str | None = None) -> None:
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\ndescription: tiny source {name}\nowner: ops@example.com\nschedule: '@daily'\n"
        f"extract: {{type: csv, path: {path or f'landing/{name}.csv'}}}\nload: {{mode: replace}}\n{extra}"
    )


def _workspace(root: Path, per_usecase: int = 5) -> Path:
    """Two use cases of `per_usecase` tiny CSV sources each; `plant/broken`'s file is missing: its run fails."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "foundation.yaml").write_text("state_dir: .foundation\n")
    (root / "landing").mkdir()
    for usecase in ("fleet", "plant"):
        folder = root / "usecases" / usecase / "sources"
        folder.mkdir(parents=True)
        for i in range(per_usecase - (usecase == "plant")):
            name = f"s{i}"
            _source(folder, name, path=f"landing/{usecase}_{name}.csv")
            rows = "".join(f"{i},{n}\n" for n in range(ROWS))
            (root / "landing" / f"{usecase}_{name}.csv").write_text(f"id,value\n{rows}")
        if usecase == "plant":
            _source(folder, "broken", path="landing/absent.csv")
    return root


# --- every run carries its use case ------------------------------------------------------------------------------


def test_every_schedule_sensor_and_backfill_run_carries_its_usecase(tmp_path: Path) -> None:
    root = _workspace(tmp_path, per_usecase=1)
    sources = root / "usecases" / "fleet" / "sources"
    _source(
        sources,
        "daily",
        "partitions: {by: daily, column: ts, start: 2026-01-01}\n"
        "columns: [{name: ts, type: timestamp, required: true}]\n",
        path="landing/fleet_s0.csv",
    )
    _source(sources, "drops", "", path="landing/drops/*.csv")
    (sources / "drops.yaml").write_text(
        (sources / "drops.yaml").read_text().replace("{mode: replace}", "{mode: append, on_new_files: true}")
    )
    (root / "landing" / "drops").mkdir()
    (root / "landing" / "drops" / "a.csv").write_text("id\n1\n")
    old = datetime(2026, 1, 1).timestamp()
    os.utime(root / "landing" / "drops" / "a.csv", (old, old))
    workspace = Workspace.open(root)
    defs = build_definitions(workspace=workspace)

    with dg.instance_for_test() as instance:
        schedules = list(defs.schedules or [])
        assert {s.name for s in schedules} >= {"fleet__s0__schedule", "fleet__daily__schedule"}
        for schedule in schedules:
            context = dg.build_schedule_context(
                instance,
                repository_def=defs.get_repository_def(),
                scheduled_execution_time=datetime(2026, 2, 1, tzinfo=UTC),
            )
            for request in schedule.evaluate_tick(context).run_requests or []:
                assert request.tags.get(USECASE_TAG) == schedule.name.split("__")[0], schedule.name
        sensors = {s.name: s for s in defs.sensors or []}
        for name, sensor in sensors.items():
            if isinstance(sensor, dg.AutomationConditionSensorDefinition):
                assert sensor.run_tags == {USECASE_TAG: name.split("__")[0]}, name
        drops = sensors["fleet__drops__new_files"].evaluate_tick(
            dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
        )
        assert [r.tags.get(USECASE_TAG) for r in drops.run_requests or []] == ["fleet"]
        daily = bronze_asset_key(next(s for s in workspace.sources() if s.name == "daily"))
        backfill_id = launch_backfill(instance, defs, [daily], ["2026-01-01"])
        assert instance.get_backfill(backfill_id).tags[USECASE_TAG] == "fleet"  # its runs inherit its tags


# --- the production instance's queue ---------------------------------------------------------------------------


def test_production_instance_limits_runs_per_usecase_from_settings(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "foundation.yaml").write_text(
        "state_dir: .foundation\ndagster: {storage: postgres, runs_per_usecase: 3}\n"
    )
    for variable in ("HOST", "PORT", "DB", "USER", "PASSWORD"):
        monkeypatch.setenv(f"DAGSTER_PG_{variable}", "x")
    written = yaml.safe_load((prepare_home(Workspace.open(tmp_path)) / "dagster.yaml").read_text())
    (limit,) = written["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limit == {"key": USECASE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 3}
    # The shipped files say the default (2): dagster.yaml for compose, the Helm values for the chart's daemon.
    shipped = yaml.safe_load((INFRA / "dagster" / "dagster.yaml").read_text())
    assert shipped["concurrency"]["runs"] == instance_config("postgres")["concurrency"]["runs"] == run_queue_config(2)
    helm = yaml.safe_load((INFRA / "helm" / "values.yaml").read_text())["dagsterDaemon"]["runCoordinator"]
    queued = helm["config"]["queuedRunCoordinator"]
    assert queued["tagConcurrencyLimits"] == run_queue_config(2)["tag_concurrency_limits"]
    assert queued["maxConcurrentRuns"] == run_queue_config(2)["max_concurrent_runs"]


# --- the queue at work -------------------------------------------------------------------------------------------


def _queued_instance(home: Path, limit: int) -> dg.DagsterInstance:
    """The workspace's SQLite instance with the production queue (coordinator + limits) and Dagster's test
    launcher, which records each run it is handed and leaves it STARTING."""
    home.mkdir(parents=True)
    config = {
        **instance_config("sqlite", home),
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
        "concurrency": {"runs": run_queue_config(limit)},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return dg.DagsterInstance.from_config(str(home))


@pytest.mark.slow
def test_queued_runs_keep_the_per_usecase_limit_and_lose_nothing(tmp_path: Path, monkeypatch) -> None:
    root = _workspace(tmp_path / "ws")
    monkeypatch.setenv(WORKSPACE_ENV, str(root))
    sys.modules.pop(DEFS_MODULE, None)  # it reads the workspace from the environment when imported
    workspace = Workspace.open(root)
    sources = sorted(workspace.sources(), key=lambda s: s.key)  # fleet's five first: a queue without limits
    instance = _queued_instance(tmp_path / "dagster", limit=2)  # would start four of fleet at once
    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(module_name=DEFS_MODULE, working_directory=str(root)),
        location_name="foundation",
    )
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    peaks: list[Counter[str]] = []
    with instance, WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
        (repository,) = context.create_request_context().get_code_location("foundation").get_repositories().values()
        remote_job = repository.get_full_job(IMPLICIT_ASSET_JOB_NAME)
        job = recon_job_from_origin(remote_job.get_python_origin())
        for source in sources:  # as a sensor or schedule tick submits its runs
            run = instance.create_run_for_job(
                job.get_definition(),
                asset_selection=frozenset({bronze_asset_key(source)}),
                tags=usecase_tags(source.usecase),
                remote_job_origin=remote_job.get_remote_origin(),
                job_code_origin=remote_job.get_python_origin(),
            )
            instance.submit_run(run.run_id, context.create_request_context())
        assert len(instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))) == len(sources) == 10
        for _ in range(20):  # each round: one daemon iteration, then the oldest run in progress runs to its end
            list(daemon.run_iteration(context))
            running = instance.get_runs(dg.RunsFilter(statuses=list(IN_PROGRESS)))
            peaks.append(Counter(r.tags[USECASE_TAG] for r in running))
            if not running:
                break
            execute_run(recon_job_from_origin(running[-1].job_code_origin), running[-1], instance)
        statuses = {r.tags[USECASE_TAG] + "/" + _name(r): r.status for r in instance.get_runs()}
        engine = instance.all_logs(instance.get_runs()[0].run_id)
        assert any("multiprocess executor" in (e.message or "") for e in engine)  # steps in their own processes
    assert max(max(p.values(), default=0) for p in peaks) == 2  # the limit binds, and is never exceeded
    assert all(set(p.values()) <= {1, 2} for p in peaks if p)
    failed = sorted(k for k, s in statuses.items() if s == dg.DagsterRunStatus.FAILURE)
    assert failed == ["plant/broken"]  # the failing source fails alone ...
    assert sum(s == dg.DagsterRunStatus.SUCCESS for s in statuses.values()) == 9  # ... every other run ends
    con = duckdb.connect()
    views = register_bronze(con, workspace.lakehouse_root)
    counts = {v: con.execute(f"SELECT count(*) FROM {v}").fetchone()[0] for v in views}  # type: ignore[index]
    assert counts == {f"bronze.{s.usecase}__{s.name}": ROWS for s in sources if s.name != "broken"}


def _name(run: dg.DagsterRun) -> str:
    (key,) = run.asset_selection or ()
    return key.path[-1]
