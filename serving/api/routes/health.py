"""Liveness and readiness (open: no key), for load balancers and Kubernetes probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.schemas import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Health, summary="The process answers")
def live() -> Health:
    return Health(status="live")


@router.get(
    "/ready",
    response_model=Health,
    summary="Every champion is loaded (503 before, or when one failed to load)",
    responses={503: {"model": Health}},
)
def ready(request: Request) -> JSONResponse:
    state = request.app.state
    body = Health(
        status="ready" if state.ready else "not ready",
        models={name: m.version for name, m in state.models.items()},
        errors=state.load_errors,
        reload_errors=state.reload_errors,
    )
    return JSONResponse(body.model_dump(), status_code=200 if state.ready else 503)
