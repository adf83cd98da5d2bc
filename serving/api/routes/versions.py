"""`POST /v1/models/{name}/versions/{version}/predict`: score with one registry version, not only the champion.

The same body and answer as `/predict` (the answer names the version), the same keys and scopes (a key limited to
other models gets 403 whatever the version); the version is loaded on demand (serving.versions). Every prediction
goes to the prediction log under its version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Path, Request

from serving.deps import AuthorizedModel
from serving.schemas import PredictResponse
from serving.scoring import predict_answer

router = APIRouter(prefix="/v1/models", tags=["predict"])


@router.post(
    "/{name}/versions/{version}/predict",
    response_model=PredictResponse,
    response_model_exclude_unset=True,  # the same answer as /predict: explanation fields only when asked
    summary="Score instances with one registry version of the model (loaded on demand)",
    responses={404: {"description": "No such model, or the model has no such version"}},
)
async def predict_version(
    request: Request,
    model: AuthorizedModel,
    version: int = Path(..., description="A version of the model in the registry (`foundation models show NAME`)."),
    payload: dict[str, Any] = Body(
        ...,
        description="`instances`: rows keyed by column, as for `/predict`; typed here with the champion's columns.",
    ),
) -> dict[str, Any]:
    state = request.app.state
    chosen = await state.versions.get(state, model, version)
    request.scope["state"]["pinned_version"] = True  # a client that chose its version is not shadowed
    return await predict_answer(state, request.scope["state"], chosen, payload)
