"""The training set: the published feature table, the rows fit for training, and a leak-free time split.

`read_feature_table` is the I/O edge (the gold Delta snapshot through DuckDB, never the warehouse a run may be
writing); the split and the leak check are pure over a DataFrame.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import numpy as np
import pandas as pd
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from foundation.core.workspace import Workspace
from foundation.engine.dbt.publish import gold_uri
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.sql import quote_ident
from foundation.specs.model import ModelSpec


class FeatureTableMissing(LookupError):
    """The feature table has no gold snapshot yet."""


def feature_table_uri(workspace: Workspace, usecase: str, spec: ModelSpec) -> str:
    return gold_uri(workspace, usecase, spec.feature_table)


def published_columns(workspace: Workspace, usecase: str, table: str) -> list[str] | None:
    """Column names of a gold snapshot from its Delta log (no data read); None when not published."""
    try:
        schema = DeltaTable(gold_uri(workspace, usecase, table)).schema()
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
        table = DeltaTable(uri, version=version)
    except TableNotFoundError as exc:
        raise FeatureTableMissing(
            f"{usecase}/{spec.feature_table} is not published yet ({uri}): run `foundation run {usecase}` first"
        ) from exc
    con = duckdb.connect()
    try:
        relation = delta_relation_sql(con, uri, version=table.version())
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


def _gap_delta(sample: object, gap: int) -> object:
    """`gap` time units in the time column's type: days for dates and timestamps, units for numbers."""
    if isinstance(sample, (pd.Timestamp, datetime, date, np.datetime64)):
        return pd.Timedelta(days=gap)
    return gap


@dataclass(frozen=True)
class TimeSplit:
    train: np.ndarray  # boolean masks over the frame's rows
    validation: np.ndarray
    validation_start: object
    train_end: object  # the last time value in training

    def describe(self) -> dict[str, object]:
        return {
            "train_rows": int(self.train.sum()),
            "validation_rows": int(self.validation.sum()),
            "train_end": str(self.train_end),
            "validation_start": str(self.validation_start),
        }


def time_split(times: pd.Series, validation_fraction: float, gap: int) -> TimeSplit:
    """Validation = the latest `validation_fraction` of distinct time values; training = rows at least `gap` time
    units before validation starts, so a training label window (`gap` long) never reaches the validation period."""
    values = pd.Series(pd.unique(times)).sort_values().reset_index(drop=True)
    if len(values) < 2:
        raise ValueError(f"a time split needs at least 2 distinct time values, found {len(values)}")
    n_validation = max(1, int(np.ceil(len(values) * validation_fraction)))
    n_validation = min(n_validation, len(values) - 1)
    validation_start = values.iloc[len(values) - n_validation]
    train_limit = validation_start - _gap_delta(validation_start, gap)
    validation = (times >= validation_start).to_numpy()
    train = (times < train_limit).to_numpy() if gap else (times < validation_start).to_numpy()
    if not train.any():
        raise ValueError(
            f"no training rows left before {train_limit} (validation starts {validation_start}, gap {gap}): "
            "lower split.validation_fraction or split.gap"
        )
    return TimeSplit(train, validation, validation_start, times[train].max())


def find_leaks(times: pd.Series, keys: pd.Series, train: np.ndarray, validation: np.ndarray, gap: int) -> list[str]:
    """Why a split leaks (empty when it does not): shared rows, training rows at or after the validation start,
    or training labels whose window (`gap` time units) reaches into the validation period."""
    problems = []
    shared = set(keys[train]) & set(keys[validation])
    if shared:
        problems.append(f"{len(shared)} row(s) are both in training and validation")
    if train.any() and validation.any():
        train_end, validation_start = times[train].max(), times[validation].min()
        if train_end >= validation_start:
            problems.append(f"training reaches {train_end}, validation starts {validation_start}")
        elif gap and train_end + _gap_delta(train_end, gap) >= validation_start:
            problems.append(
                f"training ends {train_end}: its label window of {gap} reaches validation starting {validation_start}"
            )
    return problems


def row_keys(frame: pd.DataFrame, spec: ModelSpec) -> pd.Series:
    """One string key per row: entity values and time (a prediction's identity)."""
    parts = [frame[c].astype(str) for c in (*spec.entity, spec.time)]
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key
