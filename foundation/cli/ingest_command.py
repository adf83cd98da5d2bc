"""`foundation ingest`: land sources in bronze (`foundation.dagster_defs.ingest_run`), with a progress bar and a
closing table."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from foundation.cli.output import JsonFlag, console, fail, fail_on_spec_errors, print_result, print_table
from foundation.cli.reachability import require_reachable
from foundation.core.workspace import SourceRef, Workspace
from foundation.specs.errors import SpecValidationError

if TYPE_CHECKING:
    from foundation.dagster_defs.ingest_run import IngestResult
    from foundation.engine.ingest.report import LoadReport


def ingest(
    selectors: Annotated[
        list[str] | None,
        typer.Argument(help="Use cases or sources (`usecase`, `source` or `usecase/source`); all by default."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Land sources in the bronze lakehouse now, in this process; each load's materialisation and check results are
    then recorded in the Dagster instance (`foundation ui` shows them). Exit 1 if any load failed."""
    from foundation.dagster_defs.ingest_run import ingest_now  # lazy: the loads' modules, not for --help

    workspace = Workspace.open()
    try:
        sources = workspace.select_sources(selectors)
    except SpecValidationError as exc:
        fail_on_spec_errors(exc, workspace.root, "ingest" if json_output else None)
    except LookupError as exc:
        fail("ingest", str(exc.args[0] if exc.args else exc), json_output)
    require_reachable(workspace, "ingest", json_output)
    with progress_bar(enabled=not json_output and sys.stderr.isatty()) as progress:
        result = ingest_now(workspace, sources, progress)
    if json_output:
        reports = [result.reports[s.key].to_dict() for s in sources if s.key in result.reports]
        errors = [{"message": f"{key}: {error}", "source": key} for key, error in result.errors.items()]
        data = {"reports": reports, "skipped": result.skipped}
        print_result("ingest", data, ok=result.ok(sources), errors=errors)
    else:
        print_reports(workspace, result, sources)
    raise typer.Exit(0 if result.ok(sources) else 1)


class RichProgress:
    """One line per source: rows read so far, then the outcome (a `LoadProgress` for the run)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def on_start(self, source: str) -> None:
        self.tasks[source] = self.progress.add_task(source, total=None, rows=0)

    def on_rows(self, source: str, rows_read: int) -> None:
        if source in self.tasks:
            self.progress.update(self.tasks[source], rows=rows_read)

    def on_end(self, source: str, failed: bool) -> None:
        if source in self.tasks:
            shown = {"description": f"[red]{source} failed"} if failed else {}
            self.progress.update(self.tasks[source], total=1, completed=1, **shown)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[RichProgress | None]:
    """A live progress display on the console while loads run (None when disabled: --json, no terminal)."""
    if not enabled:
        yield None
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]:>12,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        yield RichProgress(progress)


def _checks_summary(report: LoadReport) -> str:
    counts = {s: sum(1 for c in report.checks if c["status"] == s) for s in ("pass", "warn", "fail")}
    parts = [f"{counts['pass']} pass"] if counts["pass"] else []
    parts += [f"[yellow]{counts['warn']} warn[/yellow]"] if counts["warn"] else []
    parts += [f"[red]{counts['fail']} fail[/red]"] if counts["fail"] else []
    return ", ".join(parts)


def print_reports(workspace: Workspace, result: IngestResult, sources: list[SourceRef]) -> None:
    rows = []
    for source in sources:
        report = result.reports.get(source.key)
        if report is None and source.key in result.skipped:
            rows.append([source.key, "partitioned", "", "", "", "", "", "", result.skipped[source.key]])
            continue
        if report is None:
            error = result.errors.get(source.key)
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
    for report in result.reports.values():
        for check in report.checks:
            if check["status"] != "pass":
                colour = "red" if check["status"] == "fail" else "yellow"
                console.print(
                    f"[{colour}]{check['status']}[/{colour}] {report.source} {check['check']}: {check['observed']}",
                    highlight=False,
                )
    for source_key, error in result.errors.items():
        message = str(error).removeprefix(f"{source_key}: ")  # errors often name their source already
        console.print("[red]error[/red] ", end="", highlight=False)
        console.print(f"{source_key}: {message}", markup=False, highlight=False)
    lake = workspace.lakehouse_root  # a string: Path() would turn s3://bucket into s3:/bucket
    console.print(f'Lakehouse: {lake}  (query it: foundation sql "select * from bronze.<usecase>__<source>")')
