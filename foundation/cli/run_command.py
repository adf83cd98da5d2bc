"""`foundation run [USECASE]`: materialise ingestion, quality checks, dbt and the gold snapshots, in order.

The run itself is `foundation.dagster_defs.pipeline_run.run_pipeline`; this command prints its summary: time per
stage, each load, each dbt failure with the file to fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from foundation.cli.ingest_command import print_reports
from foundation.cli.ml_command import print_training_report
from foundation.cli.output import (
    EXIT_PROBLEMS,
    JsonFlag,
    console,
    fail,
    fail_on_spec_errors,
    print_result,
    print_table,
)
from foundation.cli.reachability import require_reachable
from foundation.core.gc_tuning import freeze_heap_for_exit
from foundation.core.workspace import Workspace
from foundation.specs.errors import SpecValidationError

if TYPE_CHECKING:
    from foundation.dagster_defs.pipeline_run import RunSummary


def run(
    usecase: Annotated[
        str | None,
        typer.Argument(help="Use case to materialise (its sources, checks, dbt models, KPIs); all by default."),
    ] = None,
    skip_ingestion: Annotated[
        bool, typer.Option("--skip-ingestion", help="Build from what bronze holds now: dbt and gold snapshots only.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Materialise everything in order: ingestion, quality checks, dbt build (models + tests), gold snapshots.

    One Dagster run in process (visible in `foundation ui`). Runs writing the same warehouse wait for each other.
    Exit 1 if any step failed; each dbt failure names the file to fix.
    """
    # lazy: dagster, dagster-dbt and dbt take seconds to import; `foundation --help` must not pay for them
    from foundation.dagster_defs.instance import DagsterInstanceError
    from foundation.dagster_defs.pipeline_run import run_pipeline
    from foundation.engine.dbt.project import DbtPrepareError

    workspace = Workspace.open()
    require_reachable(workspace, "run", json_output)
    try:
        summary = run_pipeline(workspace, usecase, skip_ingestion=skip_ingestion)
    except SpecValidationError as exc:
        fail_on_spec_errors(exc, workspace.root, "run" if json_output else None)
    except LookupError as exc:  # an unknown use case
        fail("run", str(exc.args[0] if exc.args else exc), json_output)
    except (DbtPrepareError, DagsterInstanceError) as exc:
        fail("run", str(exc), json_output, EXIT_PROBLEMS)
    freeze_heap_for_exit()
    if json_output:
        data = {**summary.to_dict(), "reports": [r.to_dict() for r in summary.ingest.reports.values()]}
        print_result("run", data, ok=summary.ok, errors=summary_errors(summary))
    else:
        sources = [s for s in workspace.sources() if usecase in (None, s.usecase)]
        if not skip_ingestion:
            print_reports(workspace, summary.ingest, sources)
        print_summary(summary)
        for report in summary.training.values():  # what `foundation train` prints, from this run's training
            print_training_report(report)
    raise typer.Exit(0 if summary.ok else 1)


def summary_errors(summary: RunSummary) -> list[dict[str, str]]:
    """What failed, for the --json envelope: each dbt failure with the file to fix, then each failed step."""
    errors = [
        {"message": f"{p.file}: {p.node}: {p.message or p.status}", "hint": p.hint}
        for p in summary.problems
        if p.status != "skipped"
    ]
    for step, error in summary.step_errors.items():
        errors.append({"message": f"{step}: {error.splitlines()[0] if error else 'failed'}", "step": step})
    return errors


def print_summary(summary: RunSummary) -> None:
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
