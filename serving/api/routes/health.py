"""Liveness and readiness (open: no key), for load balancers and Kubernetes probes; GET or HEAD (the status
without the body: what many load balancers send)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.schemas import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Health, summary="The process answers")
def live() -> Health:
    return Health(status="live")


# HEAD is not in the OpenAPI document: FastAPI would give both methods one operation id; docs/api.md says it.
router.add_api_route("/live", live, methods=["HEAD"], response_model=Health, include_in_schema=False)


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


router.add_api_route("/ready", ready, methods=["HEAD"], include_in_schema=False)
