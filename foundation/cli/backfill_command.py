"""`foundation backfill TARGET --from DATE --to DATE`: load a range of partitions, as the Dagster UI's backfill."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from foundation.cli.output import console, fail, fail_on_spec_errors, print_result, print_table, tool_output_to
from foundation.core.workspace import Workspace
from foundation.specs.errors import SpecValidationError


def backfill(
    target: Annotated[
        str,
        typer.Argument(
            help="A partitioned source (`usecase/source`, or `source` when unique), a use case (all its partitioned "
            "assets), or an asset key (`usecase/bronze/source`, `usecase/marts/model`)."
        ),
    ],
    first: Annotated[
        str, typer.Option("--from", help="First partition: a date (YYYY-MM-DD) or, hourly, YYYY-MM-DDTHH:MM.")
    ],
    last: Annotated[str, typer.Option("--to", help="Last partition, included (a date includes all its hours).")],
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="With a daemon: stop watching after this many seconds (the daemon goes on). Run here, the "
            "backfill always runs to its end.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")] = False,
) -> None:
    """Backfill the partitions from --from to --to of TARGET: each partition's load replaces exactly that partition.

    This launches the same Dagster asset backfill as the UI's "Materialize partitions" (it shows in the UI's
    Backfills page, one run per partition). With `dagster-daemon` running on the workspace's instance, the daemon
    runs it and this command shows its progress; without one, this command runs it itself, in process, until done.
    Exit 1 if a partition failed.

    Examples: `foundation backfill fleet/telemetry --from 2026-01-01 --to 2026-01-31`,
    `foundation backfill fleet --from 2026-01-01 --to 2026-01-07 --json`.
    """
    # lazy: the foundation.dagster_defs package imports dagster (seconds); `foundation --help` must not pay for it
    from foundation.dagster_defs.backfill import (
        IN_PROCESS_RUN_CONFIG,
        BackfillError,
        BackfillProgress,
        daemon_is_running,
        launch_backfill,
        run_backfill,
    )
    from foundation.dagster_defs.instance import dagster_instance

    workspace = Workspace.open()
    try:
        defs, keys, partitions = _selected_partitions(workspace, target, first, last)
    except SpecValidationError as exc:
        fail_on_spec_errors(exc, workspace.root, "backfill" if json_output else None)
    except BackfillError as exc:
        fail("backfill", str(exc), json_output)
    instance = dagster_instance(workspace)
    daemon = daemon_is_running(instance)
    backfill_id = launch_backfill(
        instance, defs, keys, partitions, run_config=None if daemon else IN_PROCESS_RUN_CONFIG
    )
    names = ", ".join(k.to_user_string() for k in keys)
    if not json_output:
        who = "the daemon runs it" if daemon else "no daemon on this instance: running it here"
        console.print(f"backfill {backfill_id}: {names}, {len(partitions)} partition(s) ({who})", highlight=False)
    progress_bar = None if json_output else _progress_bar()
    task = progress_bar.add_task("backfill", total=len(partitions), failed=0) if progress_bar else None

    def show(progress: BackfillProgress) -> None:
        if progress_bar is not None and task is not None:
            progress_bar.update(task, completed=len(progress.done) + len(progress.failed), failed=len(progress.failed))

    if progress_bar is not None:
        progress_bar.start()
    # dbt prints its event stream on stdout: keep it in a log, stdout is for our output (--json).
    log_path = workspace.state_dir / "logs" / "backfill.log"
    try:
        with tool_output_to(log_path):
            result = run_backfill(workspace, instance, backfill_id, on_progress=show, timeout_seconds=timeout)
    finally:
        if progress_bar is not None:
            progress_bar.stop()
    if json_output:
        print_result("backfill", result.to_dict(), ok=not result.failed)
    else:
        print_backfill(result, backfill_id, timeout)
    raise typer.Exit(1 if result.failed else 0)


def _selected_partitions(workspace: Workspace, target: str, first: str, last: str) -> tuple[Any, list[Any], list[str]]:
    """(definitions, asset keys, partition names) of the backfill; BackfillError says what is wrong with the ask."""
    # lazy: the foundation.dagster_defs package imports dagster (seconds); `foundation --help` must not pay for it
    from foundation.dagster_defs.backfill import BackfillError, parse_bound, partition_names, target_keys
    from foundation.dagster_defs.definitions import build_definitions

    defs = build_definitions(workspace=workspace)
    keys = target_keys(workspace, defs, target)
    start, end = parse_bound(first, end=False), parse_bound(last, end=True)
    if end < start:
        raise BackfillError(f"--to {last} is before --from {first}")
    graph = defs.resolve_asset_graph()
    partitions_defs = [graph.get(key).partitions_def for key in keys]
    if any(other != partitions_defs[0] for other in partitions_defs[1:]):
        names = ", ".join(k.to_user_string() for k in keys)
        raise BackfillError(f"{names} are not partitioned alike: backfill them one at a time")
    partitions = partition_names(partitions_defs[0], start, end)  # type: ignore[arg-type]
    if not partitions:
        raise BackfillError(f"no partition of {target} starts between {first} and {last} (nor before now)")
    return defs, keys, partitions


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("partitions"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("done, {task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console,
    )


def print_backfill(result: Any, backfill_id: str, timeout: float | None) -> None:
    rows = [
        [p, "[red]failed" if p in result.failed else "done" if p in result.done else "pending"]
        for p in result.partitions
    ]
    print_table(f"Backfill {backfill_id}: {result.status}", ["partition", "status"], rows)
    if not result.finished:
        console.print(
            f"not finished after {timeout:g} s: backfill {backfill_id} stays requested (foundation ui, Backfills)"
        )
