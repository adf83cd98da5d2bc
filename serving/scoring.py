"""The scoring path shared by `/predict` and `/invocations`: validate, score (gathered or alone), count, log.

The answers of the scoring routes are built here, from the app's state and the request's `context` (the ASGI
scope's `state` dict: request id and key id in, the version that scored out, for the request log), so FastAPI's
routes (serving.api.routes) and the lean ASGI handler in front of them (serving.fast_routes) answer the same.

Small requests (fewer rows than `api.batch_max_rows`) are validated in the event loop and handed to the model's
micro-batcher; big ones are validated and scored in a worker thread, as one model call. Either way the answer
names the version that scored it, and every prediction goes to the feedback log (when on).

Text that is not valid Unicode is refused first (422, serving.schemas.check_unicode), so that no answer and no row
of the prediction log holds it. A small request refused at validation is answered no sooner than a valid one
typically is, and later each time the same connection is refused again (serving.batching: a client sending
garbage must not get ahead of the valid ones). When the model
raises on a request, the client gets a 500 that names no internals and serving.model_errors logs the first error of
its kind with its traceback and counts the repeats.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from serving.batching import MicroBatcher, Scored
from serving.deps import Principal, authorized_model, served_models
from serving.errors import InvalidInput
from serving.explanations import check_explainable, explained
from serving.loaded_models import ServedModel
from serving.prediction_log import Served
from serving.protocol import FORMATS, records_of
from serving.schemas import check_unicode

MODEL_FAILED = "the model could not score this request: the server's log has the error under this request id"

Rows = list[dict[str, Any]]


def batcher_for(state: Any, name: str) -> MicroBatcher:
    batchers: dict[str, MicroBatcher] = state.batchers
    batcher = batchers.get(name)
    if batcher is None:
        api = state.settings.api
        observe = state.metrics.batch_rows
        batcher = MicroBatcher(
            name,
            api.batch_max_wait_ms / 1000,
            api.batch_max_rows,
            on_batch=lambda model, rows: observe.labels(model).observe(rows),
        )
        batchers[name] = batcher
    return batcher


async def score(
    state: Any, context: dict[str, Any], model: ServedModel, rows_of: Callable[[], Rows], size: int
) -> Scored:
    """Score the rows `rows_of()` validates (it raises InvalidInput for a 422); `size` is the row count claimed by
    the body, to choose the path before validating."""
    api = state.settings.api
    started = time.perf_counter()
    batcher = None
    try:
        if api.batching and size < api.batch_max_rows:
            batcher = batcher_for(state, model.name)
            batcher.expect()
            refusal = None
            try:
                rows = rows_of()
            except InvalidInput as refused:
                refusal = refused
            finally:
                batcher.unexpect()
            if refusal is not None:
                await batcher.refuse(refusal, time.perf_counter() - started, context.get("connection"))  # raises
            raw, predictions = await batcher.submit(model, rows)
        else:

            def alone() -> tuple[Rows, Scored]:
                checked = rows_of()
                return checked, model.predict(checked)

            rows, (raw, predictions) = await run_in_threadpool(alone)
    except InvalidInput:
        raise
    except Exception as exc:  # the model raised: logged once per kind, counted, a 500 without internals
        state.model_errors.report(model.name, model.version, exc, context.get("request_id"))
        raise HTTPException(500, MODEL_FAILED) from None
    context["model_version"] = model.version
    state.metrics.count_predictions(model.name, model.version, [p["prediction"] for p in predictions])
    feedback = state.prediction_log
    if feedback is not None:
        await feedback.record(  # returns once the predictions are durable in the spool
            Served(
                model.name,
                model.version,
                context.get("request_id", ""),
                context.get("key_id"),
                time.time(),
                rows,
                predictions,
            )
        )
    shadow = getattr(state, "shadow", None)
    if shadow is not None and not context.get("pinned_version"):  # the challenger, in the background (serving.shadow)
        shadow.offer(model, rows, predictions, context.get("request_id", ""))
    if batcher is not None:
        batcher.answered(time.perf_counter() - started, context.get("connection"))
    return raw, predictions


def claimed_rows(value: Any) -> int:
    """How many rows a body part claims (a list's length; 1 for anything else)."""
    return len(value) if isinstance(value, list) else 1


def claimed_size(payload: dict[str, Any]) -> int:
    """Pure: how many rows a body claims (`instances` or an MLflow format), unchecked: to choose the path."""
    key = next((k for k in FORMATS if k in payload), None)
    value = payload[key] if key is not None else None
    if isinstance(value, dict):  # dataframe_split's rows, or columnar inputs' first column
        value = value.get("data") if key == "dataframe_split" else next(iter(value.values()), None)
    return claimed_rows(value)


async def predict_answer(state: Any, context: dict[str, Any], model: ServedModel, payload: dict[str, Any]) -> dict:
    """`POST /v1/models/{name}/predict`: a prediction (id, model, version, prediction, score) per instance."""

    explain = payload.get("explain") is True
    checked: list[Rows] = []  # the validated rows, for the explanation

    def rows_of() -> Rows:
        check_unicode(payload)
        rows = model.validate(payload)
        if explain:
            check_explainable(model)  # a model that cannot be explained is refused before it scores
        checked.append(rows)
        return rows

    _, predictions = await score(state, context, model, rows_of, claimed_size(payload))
    answer: dict[str, Any] = {"model": model.name, "version": model.version, "predictions": predictions}
    if explain:
        answer["predictions"], answer["explanation"] = await run_in_threadpool(
            explained, model, checked[0], predictions
        )
    return answer


MODEL_HEADER = "X-Model-Name"


def invocations_model(state: Any, principal: Principal, name: str | None, header: str | None = None) -> ServedModel:
    """The model of an MLflow-protocol call: the named one; for bare `/invocations`, the one its `X-Model-Name`
    header names, else the only one served, else `api.default_model`."""
    if name is None:
        name = header.strip() if header and header.strip() else default_model(state)
    if name is None:
        names = sorted(served_models(state))
        raise HTTPException(
            400,
            f"{len(names)} models are served ({', '.join(names) or 'none'}): name one in the {MODEL_HEADER} header, "
            "set api.default_model, or use POST /v1/models/{name}/invocations",
        )
    return authorized_model(state, principal, name)


def default_model(state: Any) -> str | None:
    """The model bare `/invocations` scores without a header: the only one served, else `api.default_model`."""
    names = list(served_models(state))
    if len(names) == 1:
        return names[0]
    return state.settings.api.default_model


async def invocations_answer(state: Any, context: dict[str, Any], model: ServedModel, payload: dict[str, Any]) -> dict:
    """MLflow's scoring protocol: `{"predictions": [...]}` as the model's pyfunc returns them."""

    def rows_of() -> Rows:
        check_unicode(payload)
        key, rows = records_of(payload)
        return model.validate({"instances": rows}, rename=key)

    raw, _ = await score(state, context, model, rows_of, claimed_size(payload))
    return {"predictions": raw}
