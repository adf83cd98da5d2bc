"""Prometheus exposition (needs a key like every non-health route, unless the API is open)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from serving.deps import CurrentPrincipal

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics: requests, latency, predictions, model versions")
def metrics(request: Request, _: CurrentPrincipal) -> Response:
    api_metrics = request.app.state.metrics
    return Response(api_metrics.render(), media_type=api_metrics.content_type)
