"""`foundation sql QUERY`: DuckDB over the lakehouse."""

from __future__ import annotations

from typing import Annotated

import typer

from foundation.cli.output import JsonFlag, err_console, print_json, print_table
from foundation.core.workspace import Workspace


def sql(
    query: Annotated[
        str, typer.Argument(help='SQL over the lakehouse, e.g. "select count(*) from bronze.<uc>__<source>"')
    ],
    json_output: JsonFlag = False,
    limit: Annotated[int, typer.Option(help="Rows to print at most.")] = 50,
) -> None:
    """Query the lakehouse with DuckDB: every bronze table is a view `bronze.<usecase>__<source>`."""
    # lazy: duckdb and deltalake (0.3 s); `foundation --help` must not pay for them
    import duckdb

    from foundation.engine.lakehouse.catalog import register_bronze

    workspace = Workspace.open()
    con = duckdb.connect()
    register_bronze(con, workspace.lakehouse_root, workspace.settings.lakehouse.storage_options)
    try:
        cursor = con.execute(query)
    except duckdb.Error as exc:
        err_console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from exc
    columns = [d[0] for d in cursor.description or []]
    rows = cursor.fetchmany(limit)
    if json_output:
        print_json([dict(zip(columns, r, strict=True)) for r in rows])
    else:
        print_table("", columns, rows)
