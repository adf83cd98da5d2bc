"""Score by key and read the batch predictions: the answers of `POST /v1/models/{name}/predict-by-key` and
`GET /v1/models/{name}/predictions`.

predict-by-key: each key (the model spec's entity columns) is looked up in the model's feature index
(serving.lookup: its latest row of the gold feature table), and the rows found are scored together on the same path
as `/predict` (serving.scoring: micro-batched, counted, written to the prediction log with the key, `as_of` and the
features as the row's inputs). A key with no row is a per-key item `found: false`, not a failed request.

predictions: the rows the batch scoring (mlops.inference) appended to `<lakehouse>/ml/<uc>/<model>/predictions`,
newest first (by the time column, then score), optionally for one entity. Each row served is written to the
prediction log too, under its batch prediction id: the log says which application read which prediction, when.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa
from deltalake.exceptions import TableNotFoundError
from fastapi import HTTPException
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import open_delta, storage_options_of
from foundation.engine.sql import quote_ident
from serving.errors import InvalidInput
from serving.loaded_models import ServedModel
from serving.lookup import FeatureIndex, FeatureLookups, KeyedModel, Unavailable, as_of_value
from serving.prediction_log import Served
from serving.schemas import check_unicode
from serving.scoring import score

MAX_LIMIT = 1000
# every field of an answer's item (serving.key_schemas.KeyPrediction), so that both paths answer the same JSON
NOT_SCORED = dict.fromkeys(("as_of", "features", "prediction_id", "model", "version", "prediction", "score", "detail"))


def index_of(state: Any, model: ServedModel) -> FeatureIndex:
    lookups: FeatureLookups | None = getattr(state, "lookups", None)
    if lookups is None:
        raise HTTPException(503, "the feature lookup is not started yet (see /health/ready)")
    try:
        return lookups.index(model)
    except Unavailable as exc:
        raise HTTPException(exc.status, str(exc)) from None


def requested_keys(index: FeatureIndex, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The body's keys checked against the entity columns' types (422 names each bad field)."""
    check_unicode(payload)
    try:
        request = index.request_model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc) from None
    return [key.model_dump(by_alias=True) for key in request.keys]  # type: ignore[attr-defined]


def not_found(index: FeatureIndex, key: dict[str, Any]) -> dict[str, Any]:
    shown = ", ".join(f"{c}={key[c]!r}" for c in index.keyed.entity)
    detail = f"no row for {shown} in {index.keyed.table} (version {index.table_version})"
    return {"key": key, "found": False, **NOT_SCORED, "detail": detail}


async def predict_by_key_answer(
    state: Any, context: dict[str, Any], model: ServedModel, payload: dict[str, Any]
) -> dict[str, Any]:
    """Each key's latest feature row scored; `found: false` for a key the table does not hold."""
    index = index_of(state, model)
    keys = requested_keys(index, payload)
    items: list[dict[str, Any]] = []
    found: list[tuple[int, dict[str, Any]]] = []  # (item position, the row scored and logged)
    for key in keys:
        hit = index.find(key)
        if hit is None:
            items.append(not_found(index, key))
            continue
        as_of, features = hit
        items.append({"key": key, "found": True, **NOT_SCORED, "as_of": as_of, "features": features})
        found.append((len(items) - 1, {**key, index.keyed.time: as_of, **features}))
    if found:
        rows = [row for _, row in found]
        _, predictions = await score(state, context, model, lambda: rows, len(rows))
        for (position, _), prediction in zip(found, predictions, strict=True):
            items[position].update(prediction)
    return {
        "model": model.name,
        "version": model.version,
        "feature_table": index.keyed.table,
        "feature_table_version": index.table_version,
        "predictions": items,
    }


# -- the batch predictions --------------------------------------------------------------------------------------


def query_filters(keyed: KeyedModel, schema: pa.Schema, query: list[tuple[str, str]]) -> tuple[dict[str, Any], int]:
    """Pure: (entity column -> value, limit) from the query string; 422 naming each parameter that is unknown or
    not of its column's type."""
    filters: dict[str, Any] = {}
    limit = 100
    problems = []
    for name, text in query:
        try:
            if name == "limit":
                limit = int(text)
                if not 1 <= limit <= MAX_LIMIT:
                    raise ValueError(f"between 1 and {MAX_LIMIT}")
            elif name in keyed.entity:
                filters[name] = typed_query_value(schema.field(name).type, text)
            else:
                raise KeyError(name)
        except KeyError:
            allowed = ", ".join([*keyed.entity, "limit"])
            problems.append({"field": f"query.{name}", "message": f"unknown parameter; use {allowed}", "type": "extra"})
        except ValueError as exc:
            problems.append({"field": f"query.{name}", "message": f"invalid value: {exc}", "type": "value_error"})
    if problems:
        raise InvalidInput(problems)
    return filters, limit


def typed_query_value(arrow_type: pa.DataType, text: str) -> Any:
    """Pure: a query string's text as the entity column's type (ValueError saying what was expected)."""
    if pa.types.is_integer(arrow_type):
        try:
            return int(text)
        except ValueError:
            raise ValueError("an integer is expected") from None
    if pa.types.is_date(arrow_type):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError("a date (YYYY-MM-DD) is expected") from None
    return text


def read_predictions(
    workspace: Workspace, keyed: KeyedModel, query: list[tuple[str, str]]
) -> tuple[int, list[dict[str, Any]]]:
    """(the predictions table's version, its rows for the query, newest first); Unavailable (404) before the first
    batch, InvalidInput (422) for a bad query. Runs in a worker thread."""
    try:
        table = open_delta(workspace, keyed.predictions_uri)
    except TableNotFoundError:
        raise Unavailable(
            404, f"no batch predictions of {keyed.name} yet: the batch scoring of `foundation run` writes them"
        ) from None
    version = table.version()
    filters, limit = query_filters(keyed, pa.schema(table.schema().to_arrow()), query)
    where = " and ".join(f"{quote_ident(c)} = ?" for c in filters) or "true"
    entity = ", ".join(quote_ident(c) for c in keyed.entity)
    con = duckdb.connect()
    try:
        storage = storage_options_of(workspace)
        relation = delta_relation_sql(con, keyed.predictions_uri, version=version, storage_options=storage)
        result = con.execute(
            f"select * from {relation} where {where} "
            f"order by {quote_ident(keyed.time)} desc, score desc, {entity} limit {int(limit)}",
            list(filters.values()),
        )
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, values, strict=True)) for values in result.fetchall()]
    finally:
        con.close()
    return version, [batch_item(keyed, row) for row in rows]


def batch_item(keyed: KeyedModel, row: dict[str, Any]) -> dict[str, Any]:
    """Pure: one batch prediction as the API shows it (the shape of a predict-by-key answer)."""
    return {
        "prediction_id": row["prediction_id"],
        "key": {c: row[c] for c in keyed.entity},
        "as_of": as_of_value(row[keyed.time]),
        "model_version": int(row["model_version"]),
        "scored_at": row["scored_at"],
        # a regression's rows have no label nor threshold: its prediction is the value (`score`)
        "prediction": bool(row["label"]) if row["label"] is not None else float(row["score"]),
        "score": float(row["score"]),
        "threshold": float(row["threshold"]) if row["threshold"] is not None else None,
    }


async def predictions_answer(
    state: Any, context: dict[str, Any], model: ServedModel, query: list[tuple[str, str]]
) -> dict[str, Any]:
    """`GET /v1/models/{name}/predictions`: the batch predictions, newest first; each served row logged."""
    lookups: FeatureLookups | None = getattr(state, "lookups", None)
    keyed = lookups.keyed.get(model.name) if lookups is not None else None
    if keyed is None:
        raise HTTPException(404, f"no model spec declares {model.name} in this workspace: it has no batch predictions")
    try:
        version, items = await run_in_threadpool(read_predictions, state.workspace, keyed, query)
    except Unavailable as exc:
        raise HTTPException(exc.status, str(exc)) from None
    await log_reads(state, context, model.name, keyed, items)
    return {"model": model.name, "predictions_table_version": version, "predictions": items}


async def log_reads(
    state: Any, context: dict[str, Any], name: str, keyed: KeyedModel, items: list[dict[str, Any]]
) -> None:
    """The batch predictions served, into the prediction log (one entry per model version among them)."""
    log = state.prediction_log
    if log is None or not items:
        return
    by_version: dict[int, list[dict[str, Any]]] = {}
    for item in items:
        by_version.setdefault(item["model_version"], []).append(item)
    for version, served in by_version.items():
        await log.record(
            Served(
                name,
                version,
                context.get("request_id", ""),
                context.get("key_id"),
                time.time(),
                [{**item["key"], keyed.time: item["as_of"]} for item in served],
                [{k: item[k] for k in ("prediction_id", "prediction", "score")} for item in served],
            )
        )
