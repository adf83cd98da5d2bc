"""`POST /v1/models/{name}/predict`: `{"instances": [{...}, ...]}` -> one prediction per instance.

The body is validated against the model's own schema (from its MLflow signature): a 422 names each bad field.
Scoring is CPU-bound, so the route is a plain `def` (FastAPI runs it in its thread pool)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request

from serving.deps import AuthorizedModel
from serving.schemas import PredictResponse

router = APIRouter(prefix="/v1/models", tags=["predict"])

EXAMPLE = {"instances": [{"temp": 97.5, "vibration": 3.4, "truck_type": "van"}]}


@router.post(
    "/{name}/predict",
    response_model=PredictResponse,
    summary="Score instances with the model's champion",
    responses={422: {"description": "A field is missing, unknown or of the wrong type (each one is named)"}},
)
def predict(
    request: Request,
    model: AuthorizedModel,
    payload: dict[str, Any] = Body(
        ...,
        description="`instances`: rows keyed by column; the columns and types are at GET /v1/models/{name}.",
        examples=[EXAMPLE],
    ),
) -> dict[str, Any]:
    rows = model.validate(payload)
    _, predictions = model.predict(rows)
    request.app.state.metrics.count_predictions(model.name, model.version, [p["prediction"] for p in predictions])
    return {"model": model.name, "version": model.version, "predictions": predictions}
