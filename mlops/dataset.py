"""The training set: the published feature table and the rows fit for training.

`read_feature_table` is the I/O edge (the gold Delta snapshot through DuckDB, never the warehouse a run may be
writing); how the rows are split and the leak check are in `mlops.splits`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
from deltalake.exceptions import TableNotFoundError

from foundation.core.workspace import Workspace
from foundation.engine.dbt.publish import gold_uri
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import open_delta, storage_options_of
from foundation.engine.sql import quote_ident
from foundation.specs.model import ModelSpec

if TYPE_CHECKING:  # DuckDB makes the frame: `foundation check` reads column names here and must not load pandas
    import pandas as pd


class FeatureTableMissing(LookupError):
    """The feature table has no gold snapshot yet."""


def feature_table_uri(workspace: Workspace, usecase: str, spec: ModelSpec) -> str:
    return gold_uri(workspace, usecase, spec.feature_table)


def published_columns(workspace: Workspace, usecase: str, table: str) -> list[str] | None:
    """Column names of a gold snapshot from its Delta log (no data read); None when not published."""
    try:
        schema = open_delta(workspace, gold_uri(workspace, usecase, table)).schema()
    except (TableNotFoundError, OSError):
        return None
    return [f.name for f in schema.fields]


def read_feature_table(
    workspace: Workspace, usecase: str, spec: ModelSpec, *, training: bool, version: int | None = None
) -> tuple[pd.DataFrame, int]:
    """The feature table's latest gold snapshot (or `version`); with `training`, only rows passing `row_filter`.

    Returns the frame in a total order (time, entity, then the other columns: reproducible whatever order the
    snapshot stores its rows in) and the Delta version read.
    """
    uri = feature_table_uri(workspace, usecase, spec)
    try:
        table = open_delta(workspace, uri, version)
    except TableNotFoundError as exc:
        raise FeatureTableMissing(
            f"{usecase}/{spec.feature_table} is not published yet ({uri}): run `foundation run {usecase}` first"
        ) from exc
    con = duckdb.connect()
    try:
        relation = delta_relation_sql(con, uri, table.version(), storage_options_of(workspace))
        where = f"where ({spec.row_filter})" if training and spec.row_filter else ""
        # A total order whatever order the snapshot's files hold the rows in: time, entity, then every other
        # column as a tie-breaker (seeded subsamples and the calibration slice must see the same rows in the same
        # order in every run).
        first = [spec.time, *spec.entity]
        rest = [f.name for f in table.schema().fields if f.name not in first]
        order = ", ".join(quote_ident(c) for c in (*first, *rest))
        frame = con.execute(f"select * from {relation} {where} order by {order}").df()
    finally:
        con.close()
    return frame, table.version()
