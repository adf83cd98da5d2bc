"""`foundation status`: one screen for the platform's health, per use case."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from foundation.cli.output import JsonFlag, console, fail, print_result, print_table
from foundation.core.workspace import Workspace
from foundation.specs.errors import SpecValidationError


def _when(iso: str | None) -> str:
    return iso.replace("T", " ")[:16] if iso else "never"


def print_status(report: dict[str, Any]) -> None:
    daemon = report["daemon"]
    if daemon["running"]:
        console.print(f"daemon: [green]running[/green] (last heartbeat {_when(daemon['last_heartbeat'])} UTC)")
    else:
        console.print(f"daemon: [yellow]not running[/yellow]: {daemon['hint']}")
    automation = report["automation"]
    console.print(
        f"automation: default policy {automation['policy']}, "
        f"{len(automation['sensors'])} sensor(s) <usecase>__automation every {automation['every_s']} s"
    )
    for uc in report["usecases"]:
        verdict = "[green]ok[/green]" if uc["ok"] else "[red]needs attention[/red]"
        console.print(f"\n[bold]{uc['usecase']}[/bold]: {verdict}")
        print_table(
            "Last successful refresh (UTC)",
            ["layer", "assets", "never run", "last refresh", "oldest"],
            [
                [r["layer"], r["assets"], r["never_run"] or "", _when(r["last_refresh"]), _when(r["oldest_refresh"])]
                for r in uc["layers"]
            ],
            right=["assets", "never run"],
        )
        if uc["stale"]:
            print_table("Stale assets", ["asset", "why"], [[s["asset"], s["reason"]] for s in uc["stale"]])
        if uc["failing_checks"]:
            print_table(
                "Failing checks",
                ["asset", "check", "severity", "observed", "checked (UTC)"],
                [
                    [c["asset"], c["check"], c["severity"], c["observed"], _when(c["checked_at"])]
                    for c in uc["failing_checks"]
                ],
            )
        if uc["incidents"]:
            print_table(
                "Open incidents",
                ["asset", "rule", "severity", "value", "owners", "since (UTC)"],
                [
                    [i["asset"], i["rule"], i["severity"], i["value"], ", ".join(i["owners"]), _when(i["opened_at"])]
                    for i in uc["incidents"]
                ],
            )
        if uc["next_ticks"]:
            print_table(
                "Next ticks",
                ["what", "kind", "next (UTC)"],
                [[t["name"], t["kind"], t["next"].replace("T", " ")[:16]] for t in uc["next_ticks"]],
            )


def status(
    usecase: Annotated[str | None, typer.Argument(help="Only this use case (default: all).")] = None,
    json_output: JsonFlag = False,
) -> None:
    """The platform's health, per use case: last successful refresh of each layer (bronze, dbt layers, gold,
    ML), stale assets, failing checks (ingestion rules, dbt tests, ML drift and realised performance), open
    incidents, the next scheduled ticks, and whether the daemon runs.

    Read from the workspace's Dagster instance (what `foundation run` and `foundation daemon` recorded).
    Exit 1 when an error check fails or an incident is open.
    """
    from foundation.dagster_defs.status import platform_status  # lazy: dagster (seconds), not for --help

    workspace = Workspace.open()
    try:
        report = platform_status(workspace, usecase)
    except (SpecValidationError, LookupError) as exc:
        fail("status", str(exc), json_output)
    if json_output:
        print_result("status", report, ok=report["ok"])
    else:
        print_status(report)
    raise typer.Exit(0 if report["ok"] else 1)
