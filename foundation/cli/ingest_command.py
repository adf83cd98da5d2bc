"""`foundation ingest`: materialise ingestion assets in process, with a progress bar and a closing table."""

from __future__ import annotations

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from foundation.cli.output import console, print_table
from foundation.core.gc_tuning import freeze_heap_for_exit, quiet_garbage_collector
from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.ingest.report import LoadReport

# Our own table reports every outcome and error; the full Dagster logs stay in the instance (`foundation ui`).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class ProgressListener:
    """Shows one line per source: rows read so far, then the outcome (a `LoadProgress`); holds what the run returned."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}
        self.reports: dict[str, LoadReport] = {}
        self.errors: dict[str, str] = {}
        self.skipped: dict[str, str] = {}  # source -> why it was not loaded (a partitioned source: by partitions)

    def failed_checks(self) -> list[str]:
        """`source: check` of every error check that failed (Dagster blocks what depends on them)."""
        return [
            f"{report.source}: {check['check']}"
            for report in self.reports.values()
            for check in report.checks
            if check["status"] == "fail"
        ]

    def on_start(self, source: str) -> None:
        if self.progress is not None:
            self.tasks[source] = self.progress.add_task(source, total=None, rows=0)

    def on_rows(self, source: str, rows_read: int) -> None:
        if self.progress is not None and source in self.tasks:
            self.progress.update(self.tasks[source], rows=rows_read)

    def on_end(self, source: str, failed: bool) -> None:
        if self.progress is not None and source in self.tasks:
            shown = {"description": f"[red]{source} failed"} if failed else {}
            self.progress.update(self.tasks[source], total=1, completed=1, **shown)

    def record(self, result) -> None:  # result: dg.ExecuteInProcessResult (dagster is imported lazily)
        """The reports and errors the run returned."""
        from foundation.dagster_defs.definitions import load_reports  # lazy: imports dagster

        self.reports, self.errors = load_reports(result)


def dagster_instance(workspace: Workspace):  # -> dg.DagsterInstance (import kept lazy: dagster is slow to import)
    """The workspace's persistent Dagster instance (SQLite or PostgreSQL by settings), shown in `foundation ui`."""
    from foundation.dagster_defs.instance import dagster_instance as instance_of

    return instance_of(workspace)


def skip_partitioned(listener: ProgressListener, sources: list[SourceRef]) -> None:
    """Partitioned sources are loaded per partition (their schedule, the UI, foundation backfill), not whole."""
    for source in sources:
        if source.spec.partitions is not None:
            listener.skipped[source.key] = (
                f"{source.spec.partitions.by} partitions: foundation backfill {source.key} --from DATE --to DATE"
            )


def run_ingest(workspace: Workspace, sources: list[SourceRef], show_progress: bool) -> ProgressListener:
    """Materialise the bronze assets of `sources` through Dagster; returns what each load reported."""
    import dagster as dg

    from foundation.dagster_defs.definitions import bronze_asset_key, ingestion_definitions

    defs = ingestion_definitions(workspace)
    selection = [bronze_asset_key(s) for s in sources if s.spec.partitions is None]
    progress = (
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[rows]:>12,} rows"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        if show_progress
        else None
    )
    listener = ProgressListener(progress)
    skip_partitioned(listener, sources)
    if not selection:
        return listener
    quiet_garbage_collector()
    if progress is not None:
        progress.start()
    try:
        result = dg.materialize(
            list(defs.assets or []),
            selection=selection,
            instance=dagster_instance(workspace),
            resources={**(defs.resources or {}), "load_progress": listener},
            run_config=QUIET_RUN_CONFIG,
            raise_on_error=False,
            tags={"foundation/command": "ingest"},
        )
    finally:
        if progress is not None:
            progress.stop()
    listener.record(result)
    freeze_heap_for_exit()
    return listener


def _checks_summary(report: LoadReport) -> str:
    counts = {s: sum(1 for c in report.checks if c["status"] == s) for s in ("pass", "warn", "fail")}
    parts = [f"{counts['pass']} pass"] if counts["pass"] else []
    parts += [f"[yellow]{counts['warn']} warn[/yellow]"] if counts["warn"] else []
    parts += [f"[red]{counts['fail']} fail[/red]"] if counts["fail"] else []
    return ", ".join(parts)


def print_reports(workspace: Workspace, listener: ProgressListener, sources: list[SourceRef]) -> None:
    rows = []
    for source in sources:
        report = listener.reports.get(source.key)
        if report is None and source.key in listener.skipped:
            rows.append([source.key, "partitioned", "", "", "", "", "", "", listener.skipped[source.key]])
            continue
        if report is None:
            error = listener.errors.get(source.key)
            rows.append([source.key, "[red]failed", "", "", "", "", "", "", str(error)[:80] if error else "not run"])
            continue
        rows.append(
            [
                source.key,
                report.status,
                f"{report.rows_read:,}",
                f"{report.rows_landed:,}",
                f"{report.rows_quarantined + report.rows_dropped:,}",
                f"{report.rows_total:,}" if report.rows_total is not None else "",
                f"{report.seconds:.2f}",
                _checks_summary(report),
                "" if report.reconciles else "[red]counts do not reconcile",
            ]
        )
    print_table(
        "Ingestion",
        ["source", "status", "read", "landed", "quarantined", "table rows", "seconds", "checks", "note"],
        rows,
        right=["read", "landed", "quarantined", "table rows", "seconds"],
    )
    for report in listener.reports.values():
        for check in report.checks:
            if check["status"] != "pass":
                colour = "red" if check["status"] == "fail" else "yellow"
                console.print(
                    f"[{colour}]{check['status']}[/{colour}] {report.source} {check['check']}: {check['observed']}",
                    highlight=False,
                )
    for source_key, error in listener.errors.items():
        message = str(error).removeprefix(f"{source_key}: ")  # errors often name their source already
        console.print("[red]error[/red] ", end="", highlight=False)
        console.print(f"{source_key}: {message}", markup=False, highlight=False)
    lake = workspace.lakehouse_root  # a string: Path() would turn s3://bucket into s3:/bucket
    console.print(f'Lakehouse: {lake}  (query it: foundation sql "select * from bronze.<usecase>__<source>")')
