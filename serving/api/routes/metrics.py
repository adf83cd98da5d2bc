"""Prometheus exposition (needs a key like every non-health route, unless the API is open). A key scoped to some
models reads only their series (and those of no model)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from serving.deps import CurrentPrincipal

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, latency, predictions, model versions",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
)
def metrics(request: Request, principal: CurrentPrincipal) -> Response:
    api_metrics = request.app.state.metrics
    scoped = principal.models is not None
    return Response(api_metrics.render(principal.may_use if scoped else None), media_type=api_metrics.content_type)
