"""`foundation run [USECASE]`: materialise ingestion, quality checks, dbt and the gold snapshots, in order.

Everything runs as one Dagster run in process (so it shows in `foundation ui`); this module turns the run's events
and dbt's run_results.json into a summary: time per stage, each load, each dbt failure with the file to fix.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from foundation.cli.ingest_command import (
    QUIET_RUN_CONFIG,
    ProgressListener,
    dagster_instance,
    skip_partitioned,
)
from foundation.cli.output import tool_output_to
from foundation.core.gc_tuning import freeze_heap_for_exit, quiet_garbage_collector
from foundation.core.workspace import Workspace
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

    def stage_seconds(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for stage in self.stages:
            totals[stage.stage] = totals.get(stage.stage, 0.0) + stage.seconds
        return totals

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stage_seconds"] = {k: round(v, 3) for k, v in self.stage_seconds().items()}
        return data


def stage_of(step_key: str) -> str:
    """Which stage a Dagster step belongs to, from its op name."""
    from foundation.dagster_defs.dbt_assets import DBT_OP_NAME

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
    listener: ProgressListener | None = None,
    skip_ingestion: bool = False,
) -> RunSummary:
    """Materialise everything (or one use case's group) as one Dagster run; raises if the dbt project is broken.

    `skip_ingestion` builds from what bronze holds now (the demo has just ingested)."""
    import dagster as dg

    from foundation.dagster_defs.definitions import build_definitions
    from foundation.dagster_defs.ml_assets import training_reports

    started = time.perf_counter()
    wall_start = time.time()
    if usecase is not None and usecase not in {s.usecase for s in workspace.sources()}:
        known = ", ".join(sorted({s.usecase for s in workspace.sources()}))
        raise LookupError(f"no use case named {usecase!r}; known: {known}")
    parse_started = time.perf_counter()
    paths = prepare_project(workspace) if dbt_paths(workspace).exists() else None
    parse_seconds = time.perf_counter() - parse_started  # generated files + `dbt parse` when stale: dbt's share
    defs = build_definitions(workspace=workspace, prepared_dbt=paths)
    selection = dg.AssetSelection.groups(usecase) if usecase else dg.AssetSelection.all()
    if skip_ingestion:
        from foundation.dagster_defs.definitions import bronze_asset_key

        selection = selection - dg.AssetSelection.assets(*(bronze_asset_key(s) for s in workspace.sources()))
    from foundation.dagster_defs.partitions import partitioned_keys  # loaded per partition: foundation backfill

    selection = selection - dg.AssetSelection.assets(*partitioned_keys(defs.assets or []))
    listener = listener or ProgressListener(None)
    if not skip_ingestion:
        skip_partitioned(listener, [s for s in workspace.sources() if usecase in (None, s.usecase)])
    quiet_garbage_collector()
    instance = dagster_instance(workspace)
    # dagster-dbt re-prints dbt's whole event stream on stdout: keep it in a log, stdout is for our output (--json).
    log_path = workspace.state_dir / "logs" / "run.log"
    with tool_output_to(log_path):
        result = dg.materialize(
            list(defs.assets or []),
            selection=selection,
            instance=instance,
            resources={**(defs.resources or {}), "load_progress": listener},
            run_config=QUIET_RUN_CONFIG,
            raise_on_error=False,
            tags={"foundation/command": "run", **({"foundation/usecase": usecase} if usecase else {})},
        )
    listener.record(result)
    summary = RunSummary(ok=result.success, usecase=usecase, seconds=0.0, training=training_reports(result))
    if paths is not None:
        summary.stages.append(StageTiming("dbt_prepare", "dbt", round(parse_seconds, 3), "success"))
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
    if paths is not None:
        run_results = _read_run_results(paths, wall_start)
        if run_results is not None:
            manifest = load_manifest(paths)
            summary.problems = dbt_problems(run_results, manifest)
            for item in run_results.get("results", []):
                kind = "tests" if item["unique_id"].startswith("test.") else "models"
                summary.dbt_seconds[kind] = round(summary.dbt_seconds.get(kind, 0.0) + item["execution_time"], 3)
                summary.dbt_counts[item["status"]] = summary.dbt_counts.get(item["status"], 0) + 1
            summary.dbt_seconds["dbt_elapsed"] = round(run_results.get("elapsed_time", 0.0), 3)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def print_summary(workspace: Workspace, summary: RunSummary) -> None:
    from foundation.cli.output import console, print_table

    totals = summary.stage_seconds()
    print_table(
        "Run",
        ["stage", "steps", "seconds"],
        [
            [stage, sum(1 for s in summary.stages if s.stage == stage), f"{totals[stage]:.2f}"]
            for stage in ("ingestion", "checks", "dbt", "publish", "ml")
            if stage in totals
        ]
        + [["total (wall)", len(summary.stages), f"{summary.seconds:.2f}"]],
        right=["steps", "seconds"],
    )
    if summary.dbt_counts:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.dbt_counts.items()))
        console.print(
            f"dbt build: {counts} (models {summary.dbt_seconds.get('models', 0):.2f}s, "
            f"tests {summary.dbt_seconds.get('tests', 0):.2f}s)"
        )
    for problem in summary.problems:
        colour = "yellow" if problem.status == "skipped" else "red"
        console.print(
            f"[{colour}]{problem.status}[/{colour}] {problem.file}: {problem.node}: {problem.message or problem.status}"
            f" (hint: {problem.hint})",
            highlight=False,
        )
    for step, error in summary.step_errors.items():
        if step != "dbt_models" or not summary.problems:
            console.print(f"[red]failed[/red] {step}: {error.splitlines()[0] if error else ''}", highlight=False)
    state = "[green]ok[/green]" if summary.ok else "[red]failed[/red]"
    console.print(f"{state} in {summary.seconds:.1f}s. Next: `foundation kpi list`, `foundation ui`")


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# -- the command --------------------------------------------------------------------------------------------------


def run_cli(
    usecase: Annotated[
        str | None,
        typer.Argument(help="Use case to materialise (its sources, checks, dbt models, KPIs); all by default."),
    ] = None,
    skip_ingestion: Annotated[
        bool, typer.Option("--skip-ingestion", help="Build from what bronze holds now: dbt and gold snapshots only.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")] = False,
) -> None:
    """Materialise everything in order: ingestion, quality checks, dbt build (models + tests), gold snapshots.

    One Dagster run in process (visible in `foundation ui`). Runs writing the same warehouse wait for each other.
    Exit 1 if any step failed; each dbt failure names the file to fix.
    """
    from foundation.cli.ingest_command import print_reports
    from foundation.cli.ml_command import print_training_report
    from foundation.cli.output import err_console, print_json
    from foundation.dagster_defs.instance import DagsterInstanceError
    from foundation.engine.dbt.project import DbtPrepareError
    from foundation.specs.errors import SpecValidationError

    workspace = Workspace.open()
    listener = ProgressListener(None)
    try:
        summary = run_pipeline(workspace, usecase, listener, skip_ingestion=skip_ingestion)
    except SpecValidationError as exc:
        for error in exc.errors:
            err_console.print(f"[red]error[/red] {error.format(relative_to=workspace.root)}", highlight=False)
        raise typer.Exit(1) from exc
    except (DbtPrepareError, LookupError, DagsterInstanceError) as exc:
        err_console.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(2 if isinstance(exc, LookupError) else 1) from exc
    freeze_heap_for_exit()
    if json_output:
        print_json({**summary.to_dict(), "reports": [r.to_dict() for r in listener.reports.values()]})
    else:
        sources = [s for s in workspace.sources() if usecase in (None, s.usecase)]
        if not skip_ingestion:
            print_reports(workspace, listener, sources)
        print_summary(workspace, summary)
        for report in summary.training.values():  # what `foundation train` prints, from this run's training
            print_training_report(report)
    raise typer.Exit(0 if summary.ok else 1)


# -- the demo's data-model stage ---------------------------------------------------------------------------------

DEMO_KPIS = ("fleet_availability", "failures_per_1000_hours", "mtbf_hours", "mttr_hours", "data_freshness_hours")


def model_stage(workspace: Workspace) -> dict[str, Any] | None:
    """dbt build + gold snapshots from what bronze holds now, then the demo KPIs; None without a dbt project."""
    from kpi_catalog.catalogue import KpiCatalog

    if not dbt_paths(workspace).exists():
        return None
    summary = run_pipeline(workspace, skip_ingestion=True)
    catalog = KpiCatalog(workspace.lakehouse_root)
    kpis = [catalog.summary(k) for k in catalog.ids()]
    return {"ok": summary.ok, "summary": summary.to_dict(), "kpis": kpis}


def print_model_stage(workspace: Workspace, stage: dict[str, Any] | None) -> None:
    from foundation.cli.output import console, print_table

    if stage is None:
        console.print("no dbt project in this workspace: data model and KPIs skipped (see docs/data-model.md)")
        return
    summary = stage["summary"]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary["dbt_counts"].items()))
    console.print(f"Data model (dbt through Dagster): {counts or 'not run'} in {summary['seconds']:.1f}s")
    for problem in summary["problems"]:
        console.print(f"[red]{problem['status']}[/red] {problem['file']}: {problem['node']}: {problem['message']}")
    shown = sorted(stage["kpis"], key=lambda k: (k["id"] not in DEMO_KPIS, k["id"]))
    print_table(
        "KPIs (foundation kpi list / show NAME)",
        ["kpi", "latest period", "value", "target", "state"],
        [
            [
                k["label"],
                f"{k['latest']['period']} ({k['grain']})" if k["latest"] else "-",
                "-" if not k["latest"] or k["latest"]["value"] is None else f"{k['latest']['value']:,.2f} {k['unit']}",
                "-" if k.get("target") is None else f"{k['target']:,.2f} {k['unit']}",
                k["state"].replace("_", " "),
            ]
            for k in shown
        ],
        right=["value", "target"],
    )
