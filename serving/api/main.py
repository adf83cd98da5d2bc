"""Every router of the API, gathered in one place: what `serving.app` mounts.

The health probes are open; every other route asks for a key (serving.deps): the scoring and model routes through
their own dependencies (a scoped key gets its 403 per model), the pages and the KPI catalogue as a whole."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends

from kpi_catalog.web import catalog_router
from serving.api.routes import dashboards, health, invocations, metrics, models, portfolio, predict
from serving.deps import authenticate


def api_router(workspace_root: Path) -> APIRouter:
    """The API's routes for the workspace at `workspace_root` (the KPI catalogue reads its lakehouse)."""
    router = APIRouter()
    router.include_router(health.router)
    router.include_router(models.router)
    router.include_router(predict.router)
    router.include_router(invocations.router)
    router.include_router(metrics.router)
    keyed = [Depends(authenticate)]
    router.include_router(catalog_router(workspace_root), dependencies=keyed)
    router.include_router(portfolio.router, dependencies=keyed)
    router.include_router(dashboards.router, dependencies=keyed)
    return router
