"""Score by key and read the batch predictions: `POST /v1/models/{name}/predict-by-key` with
`{"keys": [{"truck_id": "TRK-0007"}]}`, and `GET /v1/models/{name}/predictions?truck_id=...&limit=...`
(serving.key_scoring answers both; the model's own key and query types are in its OpenAPI, serving.key_openapi).
(predict-by-key is served by serving.fast_routes unless `api.fast_routes` is off; this route documents it.)"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request

from serving.deps import AuthorizedModel
from serving.key_schemas import BatchPredictionsResponse, PredictByKeyResponse
from serving.key_scoring import MAX_LIMIT, predict_by_key_answer, predictions_answer

router = APIRouter(prefix="/v1/models", tags=["predict"])


@router.post(
    "/{name}/predict-by-key",
    operation_id="predict_by_key",
    response_model=PredictByKeyResponse,
    summary="Score entities by key: each key's latest row of the feature table, scored by the champion",
)
async def predict_by_key(
    request: Request,
    model: AuthorizedModel,
    payload: dict[str, Any] = Body(
        ...,
        description="`keys`: one object per entity, with the model spec's entity columns (e.g. `truck_id`).",
        examples=[{"keys": [{"truck_id": "TRK-0007"}]}],
    ),
) -> dict[str, Any]:
    return await predict_by_key_answer(request.app.state, request.scope["state"], model, payload)


@router.get(
    "/{name}/predictions",
    operation_id="batch_predictions",
    response_model=BatchPredictionsResponse,
    summary="The batch predictions, newest first; filter by entity columns (e.g. ?truck_id=TRK-0007)",
)
async def batch_predictions(
    request: Request,
    model: AuthorizedModel,
    limit: int = Query(100, ge=1, le=MAX_LIMIT, description="At most this many rows."),
) -> dict[str, Any]:
    query = list(request.query_params.multi_items())
    return await predictions_answer(request.app.state, request.scope["state"], model, query)
