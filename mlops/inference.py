"""Batch inference: score the feature rows not scored yet with the champion, append them to the lakehouse.

A prediction's id is a hash of (model, entity, time): a re-run adds only new rows, so every feature row has
exactly one prediction (the one made when it was first seen: what monitoring must judge against reality).

Fast path: for the pipelines training builds (median imputer + standard scaler on numbers, one-hot on text, then
the estimator), the preprocessing is compiled to DuckDB SQL (`compiled_inputs_sql`), so the read returns the model's
float matrix as Arrow columns: no pandas round trip, only the needed columns, the same IEEE operations in the same
order as scikit-learn (identical scores, a test proves it). Any other pipeline is scored through pandas as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import open_delta, storage_options_of, write_delta
from foundation.engine.sql import quote_ident, quote_literal
from foundation.specs.model import ModelRef
from mlops.dataset import FeatureTableMissing, feature_table_uri
from mlops.registry import CHAMPION, RegistryError, current_champion, mlflow_client


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


def unscored_rows_sql(
    con: duckdb.DuckDBPyConnection,
    features_uri: str,
    predictions: str | None,
    ref: ModelRef,
    select: Sequence[str] = ("*",),
    storage_options: dict[str, str] | None = None,
) -> str:
    """The feature rows with no prediction yet, each with its prediction id, then the `select` expressions."""
    spec = ref.spec
    identity = prediction_id_sql(ref.registered_name, [*spec.entity, spec.time])
    rows = delta_relation_sql(con, features_uri, storage_options=storage_options)
    source = f"select {identity} as prediction_id, {', '.join(select)} from {rows}"
    if predictions is None:
        return source
    done = delta_relation_sql(con, predictions, storage_options=storage_options, empty_name="_scored")
    return (
        f"select * from ({source}) f where not exists (select 1 from {done} p where p.prediction_id = f.prediction_id)"
    )


def _double(value: float) -> str:
    # A bare 0.1 is a DECIMAL in DuckDB; the shortest repr parsed as DOUBLE gives back the exact same float.
    return f"cast({quote_literal(repr(float(value)))} as double)"


def compiled_inputs_sql(pipeline: Any, features: list[str]) -> list[str] | None:
    """Pure: one DuckDB expression per column of the matrix `pipeline[:-1]` feeds the estimator, for pipelines
    built by `mlops.training.build_pipeline`; None for any other shape (scored through pandas instead).

    Numbers: `model_inputs` casts them (and booleans) to float64, NULL and NaN are imputed with the fitted
    statistic, then `(x - mean_) / scale_`. Text: one 0/1 column per fitted category, in `categories_` order (an
    unknown or NULL value is all zeros, `handle_unknown="ignore"`)."""
    from sklearn.compose import ColumnTransformer  # lazy: scikit-learn, +1 s for the KPI publish (SQL only)
    from sklearn.impute import SimpleImputer  # lazy: as above
    from sklearn.pipeline import Pipeline  # lazy: as above
    from sklearn.preprocessing import OneHotEncoder, StandardScaler  # lazy: as above

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    preprocess = pipeline[0]
    if not isinstance(preprocess, ColumnTransformer) or preprocess.sparse_output_:
        return None
    expressions: list[str] = []
    used: list[str] = []
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder":
            if transformer != "drop":
                return None
            continue
        columns = list(columns)
        used += columns
        if not columns:
            continue  # ColumnTransformer skips an empty selection
        if isinstance(transformer, OneHotEncoder):
            if transformer.handle_unknown != "ignore" or transformer.drop is not None:
                return None
            if getattr(transformer, "_infrequent_enabled", False):
                return None
            for column, categories in zip(columns, transformer.categories_, strict=True):
                if not all(c is None or isinstance(c, str) for c in categories):
                    return None  # non-text categories (dates, NaN floats): let scikit-learn decide
                value = f"cast({quote_ident(column)} as varchar)"
                expressions += [
                    f"cast(({value} is null) as double)"  # `model_inputs` turns NULL into None, a category
                    if c is None
                    else f"cast(coalesce({value} = {quote_literal(c)}, false) as double)"
                    for c in categories
                ]
            continue
        steps = list(transformer.named_steps.values()) if isinstance(transformer, Pipeline) else [transformer]
        if not steps or not isinstance(steps[0], SimpleImputer) or len(steps) > 2:
            return None
        imputer = steps[0]
        scaler = steps[1] if len(steps) == 2 else None
        if scaler is not None and not isinstance(scaler, StandardScaler):
            return None
        missing = imputer.missing_values
        if imputer.add_indicator or not (isinstance(missing, float) and np.isnan(missing)):
            return None
        statistics = np.asarray(imputer.statistics_, dtype=np.float64)
        if np.isnan(statistics).any():
            return None  # an all-missing training column is dropped by the imputer: not this simple shape
        mean = scaler.mean_ if scaler is not None and scaler.with_mean else None
        scale = scaler.scale_ if scaler is not None and scaler.with_std else None
        for i, column in enumerate(columns):
            x = f"cast({quote_ident(column)} as double)"
            expr = f"(case when {x} is null or isnan({x}) then {_double(statistics[i])} else {x} end)"
            if mean is not None:
                expr = f"({expr} - {_double(mean[i])})"
            if scale is not None:
                expr = f"({expr} / {_double(scale[i])})"
            expressions.append(expr)
    if sorted(used) != sorted(features):
        return None
    return expressions


def predictions_table(
    frame: pd.DataFrame | pa.Table,
    scores: np.ndarray,
    threshold: float | None,
    ref: ModelRef,
    version: int,
    scored_at: datetime,
    feature_version: int,
) -> pa.Table:
    """Pure: the rows to append (id, model, version, scored-at, entity, time, score, label). `frame`: the scored
    rows (pandas or Arrow) with their prediction id, entity and time columns. A regression (no threshold): `score`
    is the predicted value, `label` and `threshold` are null."""
    n = len(frame)
    arrow = isinstance(frame, pa.Table)
    columns: dict[str, Any] = {
        "prediction_id": frame.column("prediction_id").cast(pa.string())
        if arrow
        else pa.array(frame["prediction_id"], pa.string()),
        "model": pa.repeat(pa.scalar(ref.registered_name, pa.string()), n),
        "model_version": pa.array(np.full(n, version, dtype=np.int64)),
        "scored_at": pa.array(
            np.full(n, np.datetime64(scored_at.replace(tzinfo=None), "us")), pa.timestamp("us", "UTC")
        ),
    }
    for column in (*ref.spec.entity, ref.spec.time):
        if column not in columns:
            columns[column] = frame.column(column) if arrow else pa.array(frame[column])
    columns["score"] = pa.array(scores.astype(np.float64))
    if threshold is None:
        columns["label"] = pa.nulls(n, pa.bool_())
        columns["threshold"] = pa.nulls(n, pa.float64())
    else:
        columns["label"] = pa.array(scores >= threshold)
        columns["threshold"] = pa.array(np.full(n, threshold, dtype=np.float64))
    columns["feature_table_version"] = pa.array(np.full(n, feature_version, dtype=np.int64))
    return pa.table(columns)


MATRIX = "_x"


def matrix_select(compiled: list[str]) -> str:
    """The compiled expressions as one DuckDB `DOUBLE[width]` column: each row's model inputs side by side, so the
    Arrow result is already the row-major matrix the estimator takes (one buffer, no per-column copy)."""
    return f"[{', '.join(compiled)}]::double[{len(compiled)}] as {MATRIX}"


def compiled_scores(pipeline: Any, rows: pa.Table, width: int) -> np.ndarray:
    """The estimator's output (positive-class probability; a regressor's value) on the matrix `matrix_select` read."""
    values = rows.column(MATRIX).combine_chunks().flatten()  # fixed-size lists: the values, row after row
    if values.null_count:  # cannot happen (every compiled expression is NULL-free); keep NaN semantics if it did
        matrix = values.to_numpy(zero_copy_only=False).reshape(rows.num_rows, width)
    else:
        matrix = values.to_numpy().reshape(rows.num_rows, width)  # C order, like ColumnTransformer's hstack
    estimator = pipeline[-1]
    if not hasattr(estimator, "predict_proba"):  # a regressor: the predicted value
        return np.asarray(estimator.predict(matrix), dtype=np.float64)
    classes = list(estimator.classes_)
    if True not in classes:
        return np.zeros(rows.num_rows)
    return estimator.predict_proba(matrix)[:, classes.index(True)]


def load_champion(workspace: Workspace, ref: ModelRef) -> tuple[Any, int, float | None, list[str]]:
    import mlflow.sklearn  # lazy: mlflow, +2.9 s for the KPI publish and the dashboards (SQL only)

    client = mlflow_client(workspace)
    champion = current_champion(client, ref.registered_name)
    if champion is None:
        raise RegistryError(f"{ref.registered_name} has no champion: run `foundation train {ref.usecase}` first")
    tags = champion.tags or {}
    model = mlflow.sklearn.load_model(f"models:/{ref.registered_name}@{CHAMPION}")
    threshold = float(tags["foundation.threshold"]) if "foundation.threshold" in tags else None  # None: regression
    return model, int(champion.version), threshold, json.loads(tags["foundation.features"])


def batch_score(
    workspace: Workspace, ref: ModelRef, champion: tuple[Any, int, float | None, list[str]] | None = None
) -> InferenceReport:
    """Score every feature row without a prediction with the champion; append them in one Delta commit."""
    started = time.perf_counter()
    model, version, threshold, features = champion or load_champion(workspace, ref)
    features_uri = feature_table_uri(workspace, ref.usecase, ref.spec)
    try:
        feature_version = open_delta(workspace, features_uri).version()
    except TableNotFoundError as exc:
        raise FeatureTableMissing(f"{ref.usecase}/{ref.spec.feature_table} is not published yet") from exc
    out = predictions_uri(workspace, ref)
    try:
        open_delta(workspace, out)
        existing: str | None = out
    except TableNotFoundError:
        existing = None
    keys = list(dict.fromkeys((*ref.spec.entity, ref.spec.time)))
    compiled = compiled_inputs_sql(model, features) or None  # (no feature at all: nothing to compile)
    if compiled is not None:  # the model's matrix straight out of DuckDB, as one Arrow buffer
        select = [quote_ident(c) for c in keys] + [matrix_select(compiled)]
    else:  # any other pipeline: its raw features, scored through pandas below
        select = [quote_ident(c) for c in dict.fromkeys((*keys, *features))]
    con = duckdb.connect()
    try:
        options = storage_options_of(workspace)
        rows = con.sql(unscored_rows_sql(con, features_uri, existing, ref, select, options)).to_arrow_table()
        frame = None
        if compiled is None and rows.num_rows:
            # The same pandas dtypes training saw (DuckDB's), from the Arrow rows, in the same order.
            frame = con.sql("select * from rows").df()
        already = 0
        if existing is not None:
            already = con.execute(
                f"select count(*) from {delta_relation_sql(con, out, storage_options=options)}"
            ).fetchall()[0][0]
    finally:
        con.close()
    delta_version = None
    flagged = 0
    if rows.num_rows:
        if frame is None:
            scores = compiled_scores(model, rows, len(compiled or []))
        else:
            from mlops.training import model_inputs, model_outputs  # lazy: scikit-learn, as above

            scores = model_outputs(model, model_inputs(frame, features))
        table = predictions_table(rows, scores, threshold, ref, version, datetime.now(UTC), feature_version)
        if existing is not None:
            table = _like(table, open_delta(workspace, out))
        flagged = int((scores >= threshold).sum()) if threshold is not None else 0
        write_delta(workspace, out, table, mode="append")
        delta_version = open_delta(workspace, out).version()
    seconds = time.perf_counter() - started
    return InferenceReport(
        ref.registered_name,
        version,
        rows.num_rows,
        int(already),
        flagged,
        delta_version,
        seconds,
        rows.num_rows / seconds,
    )


def _like(table: pa.Table, existing: DeltaTable) -> pa.Table:
    """`table` in the column types of the predictions already written (tables written before batch scoring read
    Arrow kept a date time column as a timestamp): an append must match, and casting a date up is lossless."""
    schema = pa.schema(existing.schema().to_arrow())
    if sorted(schema.names) != sorted(table.column_names) or schema == table.schema:
        return table
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return table  # let the Delta append name the mismatch


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
        schema = open_delta(workspace, uri).schema()
    except TableNotFoundError:
        return []
    time_type = str(next(f.type for f in schema.fields if f.name == ref.spec.time)).lower()
    con = duckdb.connect()
    try:
        sql = at_risk_sql(
            delta_relation_sql(con, uri, storage_options=storage_options_of(workspace)),
            ref.spec.entity[0],
            ref.spec.time,
            "date" in time_type or "timestamp" in time_type,
        )
        rows = con.execute(f"select * from ({sql}) order by period desc limit {int(last)}").fetchall()
    finally:
        con.close()
    return [{"grain": g, "period": str(p), "value": v} for g, p, v in reversed(rows)]


def at_risk_entities(workspace: Workspace, ref: ModelRef, limit: int = 50) -> dict[str, Any] | None:
    """The entities the champion flags in the latest period (predicted day; scoring day for an ordinal time), most
    likely first: the dashboard's "at risk" list. None before the first batch."""
    uri = predictions_uri(workspace, ref)
    try:
        schema = open_delta(workspace, uri).schema()
    except TableNotFoundError:
        return None
    time_type = str(next(f.type for f in schema.fields if f.name == ref.spec.time)).lower()
    is_date = "date" in time_type or "timestamp" in time_type
    day = f"cast({quote_ident(ref.spec.time)} as date)" if is_date else "cast(scored_at as date)"
    shown = list(dict.fromkeys((*ref.spec.entity, ref.spec.time)))
    columns = ", ".join(quote_ident(c) for c in shown)
    con = duckdb.connect()
    try:
        relation = delta_relation_sql(con, uri, storage_options=storage_options_of(workspace))
        latest = con.execute(f"select max({day}) from {relation}").fetchall()[0][0]
        if latest is None:
            return None
        where = f"label and {day} = ?"
        flagged = con.execute(f"select count(*) from {relation} where {where}", [latest]).fetchall()[0][0]
        rows = con.execute(
            f"select {columns}, score, threshold, model_version from {relation} where {where} "
            f"order by score desc, {columns} limit {int(limit)}",
            [latest],
        ).fetchall()
    finally:
        con.close()
    names = [*shown, "score", "threshold", "model_version"]
    return {
        "period": str(latest),
        "period_of": "predicted day" if is_date else "scoring day",
        "flagged": int(flagged),
        "columns": names,
        "rows": [dict(zip(names, row, strict=True)) for row in rows],
    }
