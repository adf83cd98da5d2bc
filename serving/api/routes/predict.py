"""`POST /v1/models/{name}/predict`: `{"instances": [{...}, ...]}` -> one prediction per instance.

The body is validated against the model's own schema (from its MLflow signature): a 422 names each bad field.
Small requests are gathered by the model's micro-batcher; big ones are scored in a worker thread (serving.scoring).
(Served by serving.fast_routes unless `api.fast_routes` is off; this route documents it and answers the same.)"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request

from serving.deps import AuthorizedModel
from serving.schemas import PredictResponse
from serving.scoring import predict_answer

router = APIRouter(prefix="/v1/models", tags=["predict"])

EXAMPLE = {"instances": [{"temp": 97.5, "vibration": 3.4, "truck_type": "van"}]}


@router.post(
    "/{name}/predict",
    operation_id="predict",  # per model: predict__<model> (serving.openapi), a generated client's predict_<model>
    response_model=PredictResponse,
    response_model_exclude_unset=True,  # explanation fields only with `explain: true`, as serving.fast_routes answers
    summary="Score instances with the model's champion",
    responses={422: {"description": "A field is missing, unknown or of the wrong type (each one is named)"}},
)
async def predict(
    request: Request,
    model: AuthorizedModel,
    payload: dict[str, Any] = Body(
        ...,
        description="`instances`: rows keyed by column; the columns and types are at GET /v1/models/{name}.",
        examples=[EXAMPLE],
    ),
) -> dict[str, Any]:
    return await predict_answer(request.app.state, request.scope["state"], model, payload)
