"""`foundation doctor`: what the settings profile points at, and whether each part answers."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from foundation.cli.output import console, err_console, fail, print_result, print_table
from foundation.core.settings_profiles import selected_profile
from foundation.core.workspace import find_workspace
from foundation.platform.doctor import PARTS, run_doctor

STATUS_STYLE = {"ok": "[green]ok[/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]fail[/red]"}


def doctor(
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-p", help="Settings profile to probe (default: $FOUNDATION_PROFILE, else local)."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help=f"Probe only these parts (repeatable): {', '.join(PARTS[1:])}."),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url", help="Where the API answers (default: http://api.host:api.port), e.g. http://api:8000."
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")] = False,
) -> None:
    """Connect to every part the settings profile points at and report what is reachable: the lakehouse (a Delta
    write and DuckDB read under <root>/_doctor/), the DuckDB warehouse, Dagster's storage, MLflow tracking and
    registry, the dbt target (`dbt debug`), the API's /health/ready. Exit 1 if any part fails; each failure says
    what to fix. Secrets are never printed.

    Run `foundation check --profile P` first: it validates the same settings without connecting.
    """
    unknown = sorted(set(only or []) - set(PARTS))
    if unknown:
        fail("doctor", f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS[1:])}", json_output)
    name = selected_profile(profile)
    root = find_workspace()
    show = None if json_output or not sys.stderr.isatty() else (lambda part: err_console.print(f"probing {part}..."))
    probes = run_doctor(root, name, only=only, api_url=api_url, on_probe=show)
    failed = [p for p in probes if p.status == "fail"]
    if json_output:
        errors = [{"message": f"{p.part}: {p.detail}", "hint": p.fix} for p in failed]
        print_result("doctor", {"profile": name, "probes": [p.to_dict() for p in probes]}, ok=not failed, errors=errors)
    else:
        print_table(
            f"foundation doctor: profile {name} ({root})",
            ["part", "status", "detail", "fix", "seconds"],
            [[p.part, STATUS_STYLE[p.status], p.detail, p.fix, f"{p.seconds:.2f}"] for p in probes],
            right=["seconds"],
        )
        if failed:
            err_console.print(f"[red]{len(failed)} part(s) not reachable[/red]: {', '.join(p.part for p in failed)}")
        else:
            console.print(f"[green]ok[/green]: every part of profile {name} answers")
    raise typer.Exit(1 if failed else 0)
