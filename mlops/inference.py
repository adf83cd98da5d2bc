"""Batch inference: score the feature rows not scored yet with the champion, append them to the lakehouse.

A prediction's id is a hash of (model, entity, time): a re-run adds only new rows, so every feature row has
exactly one prediction (the one made when it was first seen: what monitoring must judge against reality).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from foundation.lakehouse.catalog import delta_relation_sql
from foundation.sql import quote_ident, quote_literal
from foundation.workspace import Workspace
from mlops.checks import ModelRef
from mlops.dataset import FeatureTableMissing, feature_table_uri
from mlops.registry import CHAMPION, RegistryError, current_champion, mlflow_client
from mlops.training import model_inputs, positive_scores


@dataclass(frozen=True)
class InferenceReport:
    model: str
    version: int
    rows_scored: int
    rows_already_scored: int
    rows_flagged: int
    delta_version: int | None
    seconds: float
    rows_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predictions_uri(workspace: Workspace, ref: ModelRef) -> str:
    return f"{workspace.lakehouse_root.rstrip('/')}/ml/{ref.usecase}/{ref.spec.name}/predictions"


def prediction_id_sql(name: str, columns: list[str]) -> str:
    """SQL of the stable prediction id: md5 of the model name, entity values and time."""
    parts = ", ".join([quote_literal(name), *(f"cast({quote_ident(c)} as varchar)" for c in columns)])
    return f"md5(concat_ws('|', {parts}))"


def unscored_rows_sql(con: duckdb.DuckDBPyConnection, features_uri: str, predictions: str | None, ref: ModelRef) -> str:
    """The feature rows with no prediction yet, each with its prediction id."""
    spec = ref.spec
    identity = prediction_id_sql(ref.registered_name, [*spec.entity, spec.time])
    source = f"select {identity} as prediction_id, * from {delta_relation_sql(con, features_uri)}"
    if predictions is None:
        return source
    done = delta_relation_sql(con, predictions, empty_name="_scored")
    return (
        f"select * from ({source}) f where not exists (select 1 from {done} p where p.prediction_id = f.prediction_id)"
    )


def predictions_table(
    frame: pd.DataFrame,
    scores: np.ndarray,
    threshold: float,
    ref: ModelRef,
    version: int,
    scored_at: datetime,
    feature_version: int,
) -> pa.Table:
    """Pure: the rows to append (id, model, version, scored-at, entity, time, score, label)."""
    n = len(frame)
    columns: dict[str, Any] = {
        "prediction_id": pa.array(frame["prediction_id"], pa.string()),
        "model": pa.array([ref.registered_name] * n, pa.string()),
        "model_version": pa.array(np.full(n, version, dtype=np.int64)),
        "scored_at": pa.array(
            np.full(n, np.datetime64(scored_at.replace(tzinfo=None), "us")), pa.timestamp("us", "UTC")
        ),
    }
    for column in (*ref.spec.entity, ref.spec.time):
        if column not in columns:
            columns[column] = pa.array(frame[column])
    columns["score"] = pa.array(scores.astype(np.float64))
    columns["label"] = pa.array(scores >= threshold)
    columns["threshold"] = pa.array(np.full(n, threshold, dtype=np.float64))
    columns["feature_table_version"] = pa.array(np.full(n, feature_version, dtype=np.int64))
    return pa.table(columns)


def load_champion(workspace: Workspace, ref: ModelRef) -> tuple[Any, int, float, list[str]]:
    import json

    import mlflow.sklearn

    client = mlflow_client(workspace)
    champion = current_champion(client, ref.registered_name)
    if champion is None:
        raise RegistryError(f"{ref.registered_name} has no champion: run `foundation train {ref.usecase}` first")
    tags = champion.tags or {}
    model = mlflow.sklearn.load_model(f"models:/{ref.registered_name}@{CHAMPION}")
    return model, int(champion.version), float(tags["foundation.threshold"]), json.loads(tags["foundation.features"])


def batch_score(
    workspace: Workspace, ref: ModelRef, champion: tuple[Any, int, float, list[str]] | None = None
) -> InferenceReport:
    """Score every feature row without a prediction with the champion; append them in one Delta commit."""
    started = time.perf_counter()
    model, version, threshold, features = champion or load_champion(workspace, ref)
    features_uri = feature_table_uri(workspace, ref.usecase, ref.spec)
    try:
        feature_version = DeltaTable(features_uri).version()
    except TableNotFoundError as exc:
        raise FeatureTableMissing(f"{ref.usecase}/{ref.spec.feature_table} is not published yet") from exc
    out = predictions_uri(workspace, ref)
    try:
        DeltaTable(out)
        existing: str | None = out
    except TableNotFoundError:
        existing = None
    con = duckdb.connect()
    try:
        frame = con.execute(unscored_rows_sql(con, features_uri, existing, ref)).df()
        already = 0
        if existing is not None:
            already = con.execute(f"select count(*) from {delta_relation_sql(con, out)}").fetchall()[0][0]
    finally:
        con.close()
    delta_version = None
    flagged = 0
    if len(frame):
        scores = positive_scores(model, model_inputs(frame, features))
        table = predictions_table(frame, scores, threshold, ref, version, datetime.now(UTC), feature_version)
        flagged = int((scores >= threshold).sum())
        options = workspace.settings.lakehouse.storage_options or None
        write_deltalake(out, table, mode="append", storage_options=options)
        delta_version = DeltaTable(out).version()
    seconds = time.perf_counter() - started
    return InferenceReport(
        ref.registered_name, version, len(frame), int(already), flagged, delta_version, seconds, len(frame) / seconds
    )


def at_risk_sql(
    predictions_relation: str, entity: str, time_column: str, time_is_date: bool, grains: Sequence[str] = ("day",)
) -> str:
    """The 'trucks at risk' KPI: per period of each grain (of the predicted day; of the scoring day for an ordinal
    time), how many distinct entities the champion flags, in the KPI table's columns (grain, period, value)."""
    day = f"cast({quote_ident(time_column)} as date)" if time_is_date else "cast(scored_at as date)"
    flagged = f"cast(count(distinct case when label then {quote_ident(entity)} end) as double)"
    parts = [
        f"select {quote_literal(grain)} as grain, cast(date_trunc({quote_literal(grain)}, {day}) as date) as period, "
        f"{flagged} as value from {predictions_relation} group by all"
        for grain in grains
    ]
    return f"select * from ({' union all '.join(parts)}) order by grain, period"


def at_risk(workspace: Workspace, ref: ModelRef, last: int = 7) -> list[dict[str, Any]]:
    """Latest `last` days of the at-risk count (empty before the first batch)."""
    uri = predictions_uri(workspace, ref)
    try:
        schema = DeltaTable(uri).schema()
    except TableNotFoundError:
        return []
    time_type = str(next(f.type for f in schema.fields if f.name == ref.spec.time)).lower()
    con = duckdb.connect()
    try:
        sql = at_risk_sql(
            delta_relation_sql(con, uri),
            ref.spec.entity[0],
            ref.spec.time,
            "date" in time_type or "timestamp" in time_type,
        )
        rows = con.execute(f"select * from ({sql}) order by period desc limit {int(last)}").fetchall()
    finally:
        con.close()
    return [{"grain": g, "period": str(p), "value": v} for g, p, v in reversed(rows)]
