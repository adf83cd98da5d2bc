"""`foundation run` without the printing: everything (or one use case) materialised as one Dagster run in process.

The run's events and dbt's run_results.json become a `RunSummary`: time per stage, each load (`ingest`), each dbt
failure with the file a person edits to fix it. The CLI prints it; the demo builds its data model with it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import dagster as dg

from foundation.core.gc_tuning import quiet_garbage_collector
from foundation.core.library_output import library_output_to
from foundation.core.workspace import Workspace
from foundation.dagster_defs.dbt_assets import DBT_OP_NAME
from foundation.dagster_defs.definitions import bronze_asset_key, build_definitions
from foundation.dagster_defs.ingest_run import QUIET_RUN_CONFIG, IngestResult, skip_partitioned
from foundation.dagster_defs.instance import dagster_instance
from foundation.dagster_defs.ml_assets import training_reports
from foundation.dagster_defs.partitions import partitioned_keys
from foundation.dagster_defs.resources import LOAD_PROGRESS, LoadProgress, NoProgress
from foundation.engine.dbt.manifest import load_manifest
from foundation.engine.dbt.paths import DbtPaths, dbt_paths
from foundation.engine.dbt.project import prepare_project

RUN_DIR = "run"  # dbt's target folder for runs, under <state>/dbt/target


@dataclass
class StageTiming:
    step: str
    stage: str  # ingestion | checks | dbt | publish | ml
    seconds: float
    status: str


@dataclass
class DbtProblem:
    node: str
    status: str  # error | fail | skipped
    message: str
    file: str
    hint: str


@dataclass
class RunSummary:
    ok: bool
    usecase: str | None
    seconds: float
    stages: list[StageTiming] = field(default_factory=list)
    dbt_counts: dict[str, int] = field(default_factory=dict)
    dbt_seconds: dict[str, float] = field(default_factory=dict)  # models / tests: dbt's own timings
    problems: list[DbtProblem] = field(default_factory=list)
    step_errors: dict[str, str] = field(default_factory=dict)
    training: dict[str, dict[str, Any]] = field(default_factory=dict)  # `<uc>/<model>` -> its training report
    ingest: IngestResult = field(default_factory=IngestResult)  # what each load reported (not in to_dict)

    def stage_seconds(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for stage in self.stages:
            totals[stage.stage] = totals.get(stage.stage, 0.0) + stage.seconds
        return totals

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, ingest=IngestResult()))
        del data["ingest"]
        data["stage_seconds"] = {k: round(v, 3) for k, v in self.stage_seconds().items()}
        return data


def stage_of(step_key: str) -> str:
    """Which stage a Dagster step belongs to, from its op name."""
    if step_key == DBT_OP_NAME:
        return "dbt"
    if "__gold__" in step_key:
        return "publish"
    if "__ml__" in step_key:
        return "ml"
    if "__bronze__" in step_key and "check" not in step_key:
        return "ingestion"
    return "checks"


def dbt_problems(run_results: dict[str, Any], manifest: dict[str, Any]) -> list[DbtProblem]:
    """Pure: every failed, erroring or skipped dbt node, with the file a person edits to fix it."""
    nodes = manifest.get("nodes", {})
    problems = []
    for result in run_results.get("results", []):
        status = result.get("status")
        if status not in ("error", "fail", "skipped", "runtime error"):
            continue
        node = nodes.get(result["unique_id"], {})
        kpi = (node.get("config", {}).get("meta") or {}).get("kpi")
        file = kpi["yaml"] if kpi else f"dbt_project/{node.get('original_file_path', '?')}"
        message = " ".join(str(result.get("message") or "").split())
        if status == "skipped":
            hint = "fix the failure upstream of it; it was not built so readers keep the previous version"
        elif node.get("resource_type") == "test":
            attached = node.get("attached_node") or ", ".join(node.get("depends_on", {}).get("nodes", []))
            hint = f"fix the data or the model {attached.split('.')[-1]}, or the test in {file}"
        elif kpi and "contract" in message.lower():
            hint = "make the KPI's sql return grain (varchar), period (date), its dimensions (varchar), value (double)"
        elif kpi:
            hint = "fix the KPI's model, time, dimensions, expression or sql"
        else:
            hint = f"fix the SQL in {file}"
        problems.append(DbtProblem(node.get("name", result["unique_id"]), status, message, file, hint))
    return problems


def _read_run_results(paths: DbtPaths, since: float) -> dict[str, Any] | None:
    path = paths.target_dir / RUN_DIR / "run_results.json"
    if not path.exists() or path.stat().st_mtime < since:
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def run_pipeline(
    workspace: Workspace,
    usecase: str | None = None,
    skip_ingestion: bool = False,
    progress: LoadProgress | None = None,
) -> RunSummary:
    """Materialise everything (or one use case's group) as one Dagster run; raises if the dbt project is broken.

    `skip_ingestion` builds from what bronze holds now (the demo has just ingested)."""
    started = time.perf_counter()
    wall_start = time.time()
    if usecase is not None and usecase not in {s.usecase for s in workspace.sources()}:
        known = ", ".join(sorted({s.usecase for s in workspace.sources()}))
        raise LookupError(f"no use case named {usecase!r}; known: {known}")
    parse_started = time.perf_counter()
    paths = prepare_project(workspace) if dbt_paths(workspace).exists() else None
    parse_seconds = time.perf_counter() - parse_started  # generated files + `dbt parse` when stale: dbt's share
    defs = build_definitions(workspace=workspace, prepared_dbt=paths)
    ingest = IngestResult()
    if not skip_ingestion:
        skip_partitioned(ingest, [s for s in workspace.sources() if usecase in (None, s.usecase)])
    quiet_garbage_collector()
    instance = dagster_instance(workspace)
    # dagster-dbt re-prints dbt's whole event stream on stdout, MLflow its notices on stderr: all into the run's log
    with library_output_to(workspace.state_dir / "logs" / "run.log"):
        result = dg.materialize(
            list(defs.assets or []),
            selection=_selection(workspace, defs, usecase, skip_ingestion),
            instance=instance,
            resources={**(defs.resources or {}), LOAD_PROGRESS: progress or NoProgress()},
            run_config=QUIET_RUN_CONFIG,
            raise_on_error=False,
            tags={"foundation/command": "run", **({"foundation/usecase": usecase} if usecase else {})},
        )
    ingest.record(result)
    summary = RunSummary(ok=result.success, usecase=usecase, seconds=0.0, ingest=ingest)
    summary.training = training_reports(result)
    if paths is not None:
        summary.stages.append(StageTiming("dbt_prepare", "dbt", round(parse_seconds, 3), "success"))
    _add_steps(summary, instance, result)
    if paths is not None:
        _add_dbt_results(summary, paths, wall_start)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _selection(
    workspace: Workspace, defs: dg.Definitions, usecase: str | None, skip_ingestion: bool
) -> dg.AssetSelection:
    selection = dg.AssetSelection.groups(usecase) if usecase else dg.AssetSelection.all()
    if skip_ingestion:
        selection = selection - dg.AssetSelection.assets(*(bronze_asset_key(s) for s in workspace.sources()))
    # partitioned assets are loaded per partition (their schedule, foundation backfill), never whole
    return selection - dg.AssetSelection.assets(*partitioned_keys(defs.assets or []))


def _add_steps(summary: RunSummary, instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> None:
    """Time and status of every step, and the error of each failed one."""
    for stats in instance.get_run_step_stats(result.run_id):
        if stats.start_time is None or stats.end_time is None:
            continue
        summary.stages.append(
            StageTiming(
                stats.step_key,
                stage_of(stats.step_key),
                round(stats.end_time - stats.start_time, 3),
                str(stats.status.value if stats.status else "?").lower(),
            )
        )
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.step_key:
            error = event.event_specific_data.error  # type: ignore[union-attr]
            summary.step_errors[event.step_key] = error.message.strip() if error else "failed"


def _add_dbt_results(summary: RunSummary, paths: DbtPaths, since: float) -> None:
    """dbt's own view of the run: counts per status, timings, each problem with the file to fix."""
    run_results = _read_run_results(paths, since)
    if run_results is None:
        return
    summary.problems = dbt_problems(run_results, load_manifest(paths))
    for item in run_results.get("results", []):
        kind = "tests" if item["unique_id"].startswith("test.") else "models"
        summary.dbt_seconds[kind] = round(summary.dbt_seconds.get(kind, 0.0) + item["execution_time"], 3)
        summary.dbt_counts[item["status"]] = summary.dbt_counts.get(item["status"], 0) + 1
    summary.dbt_seconds["dbt_elapsed"] = round(run_results.get("elapsed_time", 0.0), 3)
