"""`foundation sql QUERY`: DuckDB over the lakehouse."""

from __future__ import annotations

from typing import Annotated

import typer

from foundation.cli.output import EXIT_PROBLEMS, JsonFlag, fail, print_result, print_table
from foundation.core.workspace import Workspace


def sql(
    query: Annotated[
        str, typer.Argument(help='SQL over the lakehouse, e.g. "select count(*) from gold.<uc>__<model>"')
    ],
    json_output: JsonFlag = False,
    limit: Annotated[int, typer.Option(help="Rows to print at most.")] = 50,
) -> None:
    """Query the lakehouse with DuckDB: every table is a view `layer.name`, as `foundation tables` lists them.

    Layers: bronze.<uc>__<source>, quarantine.<uc>__<source>, gold.<uc>__<model> (and the same by dbt folder:
    marts., features., kpis.), ml.<uc>__<model>__predictions|drift|realised_performance|api_predictions|training_set,
    ml.promotions, quality.check_results."""
    # lazy: duckdb and deltalake (0.3 s); `foundation --help` must not pay for them
    import duckdb

    from foundation.platform.tables import register_tables

    workspace = Workspace.open()
    con = duckdb.connect()
    register_tables(con, workspace)
    try:
        cursor = con.execute(query)
    except duckdb.Error as exc:
        fail("sql", str(exc), json_output, EXIT_PROBLEMS)
    columns = [d[0] for d in cursor.description or []]
    rows = cursor.fetchmany(limit)
    if json_output:
        print_result("sql", [dict(zip(columns, r, strict=True)) for r in rows])
    else:
        print_table("", columns, rows)
