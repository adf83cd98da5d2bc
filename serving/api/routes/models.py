"""The served champions: list, and one model's version, metrics, input schema and promotion."""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving.deps import AuthorizedModel, CurrentPrincipal, served_models
from serving.schemas import ModelDetail, ModelSummary

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=list[ModelSummary], summary="The served champions this key may use")
def list_models(request: Request, principal: CurrentPrincipal) -> list[dict]:
    return [m.summary() for name, m in sorted(served_models(request.app.state).items()) if principal.may_use(name)]


@router.get("/{name}", response_model=ModelDetail, summary="One champion: version, metrics, input schema, promotion")
def get_model(model: AuthorizedModel) -> dict:
    return model.detail()
