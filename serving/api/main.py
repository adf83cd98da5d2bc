"""Every router of the API, gathered in one place: what `serving.app` mounts.

The health probes and the API docs (`/docs`, `/redoc`, `/openapi.json`) are open; every other route asks for a key
(serving.deps): the scoring and model routes through their own dependencies (a scoped key gets its 403 per model),
the pages and the KPI catalogue as a whole (where a browser may log in instead: serving.auth_session)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request

from kpi_catalog.web import catalog_router
from serving.api.routes import (
    by_key,
    dashboards,
    docs,
    health,
    home,
    invocations,
    metrics,
    models,
    portfolio,
    predict,
    versions,
)
from serving.auth_session import page_principal
from serving.errors import InvalidInput


async def single_query_values(request: Request) -> None:
    """A query parameter given twice is a 422: every parameter of this API takes one value (FastAPI would keep
    the last one silently)."""
    names = [name for name, _ in request.query_params.multi_items()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInput(
            [
                {"field": f"query.{name}", "message": "given more than once: send one value", "type": "repeated"}
                for name in repeated
            ]
        )


def api_router(workspace_root: Path) -> APIRouter:
    """The API's routes for the workspace at `workspace_root` (the KPI catalogue reads its lakehouse)."""
    router = APIRouter(dependencies=[Depends(single_query_values)])
    router.include_router(health.router)
    router.include_router(docs.router)
    router.include_router(models.router)
    router.include_router(predict.router)
    router.include_router(by_key.router)
    router.include_router(versions.router)
    router.include_router(invocations.router)
    router.include_router(metrics.router)
    router.include_router(home.router)  # /login, /logout: open
    keyed = [Depends(page_principal)]  # the key header, or a browser's session cookie (serving.auth_session)
    router.include_router(home.home_router, dependencies=keyed)
    router.include_router(catalog_router(workspace_root), dependencies=keyed)
    router.include_router(portfolio.router, dependencies=keyed)
    router.include_router(dashboards.router, dependencies=keyed)
    return router
