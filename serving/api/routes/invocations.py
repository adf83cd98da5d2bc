"""MLflow-compatible scoring: `POST /invocations` and `POST /v1/models/{name}/invocations`.

Accepts the bodies of MLflow's scoring server (`dataframe_split`, `dataframe_records`, `instances`, `inputs`) and
answers `{"predictions": [...]}` with what the model's pyfunc returns (for our classifiers, `predict_proba` rows),
so a client written for `mlflow models serve` works unchanged. `/invocations` serves the only model when exactly
one is served; with several, use the named route. (Served by serving.fast_routes unless `api.fast_routes` is off;
these routes document them and answer the same.)"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request

from serving.deps import CurrentPrincipal
from serving.scoring import invocations_answer, invocations_model

router = APIRouter(tags=["invocations"])

BODY = Body(
    ...,
    description="Exactly one of `dataframe_split`, `dataframe_records`, `instances`, `inputs` (MLflow's protocol).",
    examples=[{"dataframe_split": {"columns": ["temp", "truck_type"], "data": [[97.5, "van"]]}}],
)


@router.post("/v1/models/{name}/invocations", summary="MLflow scoring protocol, for one named model")
async def invocations_for(
    request: Request, name: str, principal: CurrentPrincipal, payload: dict[str, Any] = BODY
) -> dict[str, Any]:
    state = request.app.state
    return await invocations_answer(state, request.scope["state"], invocations_model(state, principal, name), payload)


@router.post("/invocations", summary="MLflow scoring protocol (the only served model)")
async def invocations(request: Request, principal: CurrentPrincipal, payload: dict[str, Any] = BODY) -> dict[str, Any]:
    state = request.app.state
    return await invocations_answer(state, request.scope["state"], invocations_model(state, principal, None), payload)
