"""`foundation quality` (the latest result of every rule, freshness re-measured now) and `foundation profile`
(a source's columns, and the checks to suggest)."""

from __future__ import annotations

from typing import Annotated

import typer
import yaml

from foundation.cli.output import EXIT_PROBLEMS, JsonFlag, console, err_console, fail, print_result, print_table
from foundation.core.workspace import Workspace
from foundation.specs.errors import SpecValidationError

STATUS_STYLE = {"pass": "green", "warn": "yellow", "fail": "red", "not loaded": "dim"}


def quality(
    usecase: Annotated[str | None, typer.Argument(help="Only this use case (default: all).")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Latest result of every quality rule per source, and of every model's monitoring checks (feature drift,
    realised performance); exit 1 if an error rule or check fails.

    Freshness is measured again now. This is the report to show: sources, quality, freshness.
    """
    # lazy: deltalake, pandera and the Dagster instance; `foundation --help` must not pay for them
    from foundation.platform.quality_report import ml_monitoring_rows, quality_report

    workspace = Workspace.open()
    try:
        sources = workspace.select_sources([usecase] if usecase else None)
    except (SpecValidationError, LookupError) as exc:
        hint = "; fix the workspace YAML first: `foundation check` lists every error"
        fail("quality", f"{exc}{hint if isinstance(exc, SpecValidationError) else ''}", json_output)
    rows = quality_report(workspace, sources)
    rows += ml_monitoring_rows(workspace, {usecase} if usecase else None)  # drift, realised performance
    failed = [r for r in rows if r["status"] == "fail"]
    if json_output:
        errors = [{"message": f"{r['source']}: {r['check']} failed", "source": r["source"]} for r in failed]
        print_result("quality", rows, ok=not failed, errors=errors)
    else:
        table_rows = []
        for r in rows:
            style = STATUS_STYLE.get(r["status"], "")
            when = r["checked_at"].strftime("%Y-%m-%d %H:%M") if r["checked_at"] else ""
            table_rows.append(
                [
                    r["source"],
                    r["check"],
                    f"[{style}]{r['status']}[/{style}]" if style else r["status"],
                    r["failing"] or "",
                    r["observed"],
                    when,
                ]
            )
        print_table(
            "Quality",
            ["source", "check", "status", "failing", "observed", "checked (UTC)"],
            table_rows,
            right=["failing"],
        )
        counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("pass", "warn", "fail", "not loaded")}
        console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    raise typer.Exit(1 if failed else 0)


def profile(
    source: Annotated[str, typer.Argument(help="A source: `name` or `usecase/name`.")],
    write: Annotated[bool, typer.Option("--write", help="Add the suggested checks to the source YAML.")] = False,
    sample_rows: Annotated[int | None, typer.Option(help="Profile only the first N rows.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Profile a source (type, null %, distinct, min/max, top values, pattern) and suggest its `checks:`."""
    # lazy: the profiler and the connectors (duckdb, pyarrow); `foundation --help` must not pay for them
    from foundation.engine.connectors.staging import ExtractError
    from foundation.engine.quality.profiling import profile_source, suggest_checks, write_suggestions

    workspace = Workspace.open()
    try:
        (ref,) = workspace.select_sources([source])[:1]
    except (SpecValidationError, LookupError) as exc:
        fail("profile", str(exc), json_output)
    try:
        result = profile_source(workspace, ref, sample_rows)  # rest_api/sql/html_table: staged first
    except ExtractError as exc:
        fail("profile", str(exc), json_output, EXIT_PROBLEMS)
    suggestions = suggest_checks(result)
    if json_output:
        print_result("profile", {"profile": result.to_dict(), "suggested": suggestions})
    else:
        print_table(
            f"Profile of {ref.key}: {result.rows:,} rows",
            ["column", "type", "null %", "distinct", "min", "max", "top values", "pattern"],
            [
                [
                    c.name,
                    c.type,
                    f"{c.null_percent:.2f}",
                    c.distinct,
                    c.min,
                    c.max,
                    ", ".join(f"{v} ({n})" for v, n in c.top_values[:3]),
                    f"{c.pattern} ({c.pattern_share:.0%})" if c.pattern else "",
                ]
                for c in result.columns
            ],
            right=["null %", "distinct"],
        )
        console.print("Suggested rules (review before use):")
        console.print(yaml.safe_dump(suggestions, sort_keys=False, default_flow_style=None), markup=False)
    if write:
        changed = write_suggestions(ref.path, suggestions)
        message = f"added to {ref.path.name}: {', '.join(changed)}" if changed else "nothing to add (rules exist)"
        err_console.print(message)
