"""Check results history: one Delta table `<lakehouse>/quality/check_results`, a row per check per load.

Dagster keeps check results in its own instance; this table is ours so `foundation quality` (and the
customer-facing report) work on any Dagster deployment and keep the full history.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import storage_options_of, write_delta
from foundation.engine.quality.outcomes import CheckOutcome
from foundation.engine.sql import quote_ident

SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("usecase", pa.string()),
        ("load_id", pa.string()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
        ("check", pa.string()),
        ("stage", pa.string()),
        ("severity", pa.string()),
        ("status", pa.string()),
        ("passed", pa.bool_()),
        ("failing", pa.int64()),
        ("observed", pa.string()),
        ("description", pa.string()),
        ("sample", pa.string()),  # JSON list
    ]
)


def results_uri(workspace: Workspace) -> str:
    return f"{workspace.lakehouse_root.rstrip('/')}/quality/check_results"


def record_outcomes(
    workspace: Workspace, source_key: str, load_id: str, checked_at: datetime, outcomes: list[CheckOutcome]
) -> None:
    if not outcomes:
        return
    usecase = source_key.split("/", 1)[0]
    rows = [
        {
            "source": source_key,
            "usecase": usecase,
            "load_id": load_id,
            "checked_at": checked_at,
            "check": o.check,
            "stage": o.stage,
            "severity": o.severity,
            "status": o.status,
            "passed": o.passed,
            "failing": o.failing,
            "observed": o.observed,
            "description": o.description,
            "sample": json.dumps(o.sample),
        }
        for o in outcomes
    ]
    write_delta(workspace, results_uri(workspace), _arrow(rows), mode="append")


def _arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as an Arrow table of `SCHEMA`, converted by DuckDB: pyarrow converts Python values through its
    pandas shim, whose first use imports pandas (0.2-0.7 s per load), which nothing else in a load needs."""
    columns = ", ".join(f"CAST(? AS {_DUCKDB_TYPES[field.type]})" for field in SCHEMA)
    values = ", ".join(f"({columns})" for _ in rows)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")  # DuckDB prints its bar on stdout: it would break --json
        table = con.sql(
            f"SELECT * FROM (VALUES {values}) AS t({', '.join(quote_ident(f.name) for f in SCHEMA)})",
            params=[row[field.name] for row in rows for field in SCHEMA],
        ).to_arrow_table()
    finally:
        con.close()
    return table.cast(SCHEMA)


_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
    pa.bool_(): "BOOLEAN",
    pa.int64(): "BIGINT",
}


def latest_results(workspace: Workspace, usecase: str | None = None) -> list[dict[str, Any]]:
    """The newest result of every (source, check), ordered by source and check."""
    con = duckdb.connect()
    try:
        try:
            relation = delta_relation_sql(con, results_uri(workspace), storage_options=storage_options_of(workspace))
        except TableNotFoundError:
            return []
        where = "WHERE usecase = ?" if usecase else ""
        cursor = con.execute(
            f'SELECT * EXCLUDE (rank) FROM (SELECT *, row_number() OVER (PARTITION BY source, "check" '
            f"ORDER BY checked_at DESC) AS rank FROM {relation} {where}) WHERE rank = 1 "
            'ORDER BY source, stage, "check"',
            [usecase] if usecase else [],
        )
        columns = [d[0] for d in cursor.description or []]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()
    for row in rows:
        row["sample"] = json.loads(row["sample"] or "[]")
    return rows
