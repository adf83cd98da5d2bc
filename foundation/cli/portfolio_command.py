"""`foundation portfolio [--json] [--out DIR]`: rank the use cases on their qualification sheets.

Registered by `foundation.cli.main`. The ranking and phases come from `foundation.platform.portfolio`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foundation.cli.output import console, err_console, print_result, print_table
from foundation.core.workspace import Workspace
from foundation.platform.portfolio.scoring import NO_SHEET

MATRIX_FILE = "portfolio.png"
PAGE_FILE = "portfolio.html"


def _missing_note(missing: list[str]) -> str:
    if not missing:
        return ""
    return " (no sheet)" if missing == [NO_SHEET] else f" ({len(missing)} criteria to rate)"


def portfolio(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(help=f"Also write the matrix ({MATRIX_FILE}) and a page ({PAGE_FILE}) into this folder."),
    ] = None,
) -> None:
    """Rank the use cases: quick wins, strategic bets, low-hanging fruit, to avoid (then unscored sheets).

    Value and complexity are 0-100 scores of each usecase.yaml's qualification sheet, weighted by `portfolio:` in
    foundation.yaml; the quadrants split at `portfolio.threshold` (50). The phase (ideation, sprint0,
    development, industrialisation, run) is derived from what exists: data landed, dbt models built, champions
    registered, schedules declared and running. The same page is served by `foundation serve` at /portfolio.
    See docs/usecases.md.
    """
    from foundation.platform.portfolio.report import build_portfolio  # lazy: deltalake and pyarrow (0.4 s)

    workspace = Workspace.open()
    entries = build_portfolio(workspace)
    threshold = workspace.settings.portfolio.threshold
    written: list[Path] = []
    if out is not None:
        # lazy: matplotlib and jinja2 (seconds), only with --out
        from foundation.platform.portfolio.matrix import matrix_png
        from foundation.platform.portfolio.page import portfolio_html

        out.mkdir(parents=True, exist_ok=True)
        png = matrix_png(entries, threshold)
        (out / MATRIX_FILE).write_bytes(png)
        (out / PAGE_FILE).write_text(portfolio_html(entries, png, threshold), encoding="utf-8")
        written = [out / MATRIX_FILE, out / PAGE_FILE]
    if json_output:
        print_result(
            "portfolio",
            {
                "threshold": threshold,
                "usecases": [e.to_dict() for e in entries],
                "files": [str(p) for p in written],
            },
        )
        return
    if not entries:
        err_console.print("no use case yet: create one with `foundation usecase new NAME`")
    print_table(
        "Portfolio",
        ["#", "use case", "type", "owner", "value", "complexity", "quadrant", "phase"],
        [
            [
                i,
                e.name,
                e.type or "-",
                e.owner or "-",
                "-" if e.scores.value is None else f"{e.scores.value:.0f}",
                "-" if e.scores.complexity is None else f"{e.scores.complexity:.0f}",
                e.scores.quadrant + _missing_note(e.scores.missing),
                e.phase
                + (f" (declared {e.declared_phase})" if e.declared_phase and e.declared_phase != e.phase else ""),
            ]
            for i, e in enumerate(entries, start=1)
        ],
        right=["#", "value", "complexity"],
    )
    for path in written:
        console.print(f"wrote {path}")
