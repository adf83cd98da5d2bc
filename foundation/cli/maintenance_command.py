"""`foundation maintenance`: compact and vacuum every Delta table of the lakehouse
(foundation/engine/lakehouse/maintenance.py)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from foundation.cli.output import console, err_console, print_result, print_table
from foundation.core.workspace import Workspace

if TYPE_CHECKING:
    from foundation.engine.lakehouse.maintenance import MaintenanceReport


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def print_report(report: MaintenanceReport) -> None:
    rows = [
        [
            t.table,
            t.kind,
            t.files_before,
            t.files_after,
            t.files_compacted,
            t.files_removed,
            _size(t.bytes_reclaimed),
            t.status if t.status == "ok" else f"[red]{t.status}[/red]",
            "; ".join(t.notes),
        ]
        for t in report.tables
    ]
    title = f"Maintenance of {report.lakehouse} (retention {report.retention_hours} h)"
    if report.dry_run:
        title += ": dry run, nothing changed"
    print_table(
        title,
        ["table", "kind", "files before", "files after", "compacted", "removed", "reclaimed", "status", "note"],
        rows,
        right=["files before", "files after", "compacted", "removed", "reclaimed"],
    )
    totals = report.totals()
    compacted, removed, reclaimed = totals["files_compacted"], totals["files_removed"], _size(totals["bytes_reclaimed"])
    if report.dry_run:
        done = f"would compact {compacted} small file(s) and remove {removed} file(s) ({reclaimed})"
    else:
        done = f"compacted {compacted} small file(s), removed {removed} file(s), reclaimed {reclaimed}"
    console.print(f"{len(report.tables)} table(s): {done} in {report.seconds:.1f} s", highlight=False)


def maintenance(
    usecase: Annotated[
        str | None, typer.Argument(help="Only this use case's tables (bronze/<uc>, gold/<uc>, ml/<uc>).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be compacted and removed; change nothing.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")] = False,
) -> None:
    """Compact and vacuum every Delta table of the lakehouse: bronze, quarantine, quality results, gold, ML
    tables and the API's prediction/feedback log.

    Compaction rewrites small files into larger ones; the rows do not change.

    Vacuum deletes files no snapshot needs any more, and part files a crashed write left behind, once they are
    older than maintenance.retention_hours (168 h).

    Settings: the maintenance: section of foundation.yaml (docs/operations.md, Maintenance). Exit 1 if any table
    failed; the others are still done.
    """
    workspace = Workspace.open()
    settings = workspace.settings
    show = not json_output and sys.stderr.isatty()
    # lazy: deltalake, pyarrow and numpy (0.3-0.9 s); `foundation --help` must not pay for them
    from foundation.engine.lakehouse.maintenance import run_maintenance

    report = run_maintenance(
        workspace.lakehouse_root,
        settings.maintenance,
        usecase=usecase,
        dry_run=dry_run,
        storage_options=settings.lakehouse.storage_options or None,
        progress=(lambda table, step: err_console.print(f"{step} {table}...", highlight=False)) if show else None,
    )
    if json_output:
        failed = [t for t in report.tables if t.status == "failed"]
        errors = [{"message": f"{t.table}: {'; '.join(t.notes)}", "table": t.table} for t in failed]
        print_result("maintenance", report.to_dict(), ok=report.ok, errors=errors)
    else:
        print_report(report)
        for table in report.tables:
            if table.status == "failed":
                err_console.print(f"[red]error[/red] {table.table}: ", end="", highlight=False)
                err_console.print("; ".join(table.notes), markup=False, highlight=False)
    raise typer.Exit(0 if report.ok else 1)
