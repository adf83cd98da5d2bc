"""`foundation tables [LAYER]`: the lakehouse tables by layer, as `foundation sql` and `read_table()` name them."""

from __future__ import annotations

from typing import Annotated

import typer

from foundation.cli.output import JsonFlag, err_console, fail, print_result, print_table
from foundation.core.workspace import Workspace


def tables(
    layer: Annotated[
        str | None,
        typer.Argument(help="Only this layer (schema): bronze, quarantine, gold, marts, features, kpis, ml, quality."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """List the lakehouse's tables: layer, name, rows, Delta version, last written.

    Each is queryable as `layer.name` in `foundation sql`, and readable in Python with
    `foundation.platform.tables.read_table("gold.<usecase>__<model>")` (an Arrow table)."""
    from foundation.platform.tables import list_tables  # lazy: duckdb and deltalake (0.3 s), not for --help

    listed = list_tables(Workspace.open())
    layers = sorted({t["layer"] for t in listed})
    if layer is not None and layer not in layers:
        fail("tables", f"no layer {layer!r} in the lakehouse; it has: {', '.join(layers) or 'none yet'}", json_output)
    listed = [t for t in listed if layer in (None, t["layer"])]
    if json_output:
        print_result("tables", listed)
        return
    if not listed:
        err_console.print("no table yet: run `foundation run` (or `foundation demo`) first")
        raise typer.Exit(1)
    rows = [
        [t["layer"], t["name"], "-" if t["rows"] is None else f"{t['rows']:,}", t["delta_version"], t["updated_at"]]
        for t in listed
    ]
    print_table(
        "Lakehouse tables (query as layer.name)",
        ["layer", "name", "rows", "version", "updated at"],
        rows,
        right=["rows", "version"],
    )
