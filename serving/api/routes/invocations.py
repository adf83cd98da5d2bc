"""MLflow-compatible scoring: `POST /invocations` and `POST /v1/models/{name}/invocations`.

Accepts the bodies of MLflow's scoring server (`dataframe_split`, `dataframe_records`, `instances`, `inputs`) and
answers `{"predictions": [...]}` with what the model's pyfunc returns (for our classifiers, `predict_proba` rows),
so a client written for `mlflow models serve` works unchanged. Bare `/invocations` scores the model named by the
`X-Model-Name` header, else the only one served, else `api.default_model`; with several and neither, a 400.
(Served by serving.fast_routes unless `api.fast_routes` is off; these routes document them and answer the same.)
The model is a dependency, as for `/predict`: a key that may not use it gets its 403 (404, 400) whatever the body,
before the body's shape is checked."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request

from serving.deps import CurrentPrincipal
from serving.loaded_models import ServedModel
from serving.scoring import MODEL_HEADER, invocations_answer, invocations_model

router = APIRouter(tags=["invocations"])

BODY = Body(
    ...,
    description="Exactly one of `dataframe_split`, `dataframe_records`, `instances`, `inputs` (MLflow's protocol).",
    examples=[{"dataframe_split": {"columns": ["temp", "truck_type"], "data": [[97.5, "van"]]}}],
)


async def named_model(request: Request, name: str, principal: CurrentPrincipal) -> ServedModel:
    return invocations_model(request.app.state, principal, name)


async def chosen_model(
    request: Request,
    principal: CurrentPrincipal,
    model_name: Annotated[
        str | None,
        Header(
            alias=MODEL_HEADER,
            description="The model to score (default: the only one served, else `api.default_model`).",
        ),
    ] = None,
) -> ServedModel:
    return invocations_model(request.app.state, principal, None, model_name)


@router.post(
    "/v1/models/{name}/invocations", operation_id="invocations", summary="MLflow scoring protocol, for one named model"
)
async def invocations_for(
    request: Request, model: Annotated[ServedModel, Depends(named_model)], payload: dict[str, Any] = BODY
) -> dict[str, Any]:
    return await invocations_answer(request.app.state, request.scope["state"], model, payload)


@router.post(
    "/invocations",
    operation_id="default_invocations",
    summary="MLflow scoring protocol: the model named by X-Model-Name, or the default one",
)
async def invocations(
    request: Request, model: Annotated[ServedModel, Depends(chosen_model)], payload: dict[str, Any] = BODY
) -> dict[str, Any]:
    return await invocations_answer(request.app.state, request.scope["state"], model, payload)
