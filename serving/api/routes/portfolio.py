"""The use-case portfolio over HTTP: `/v1/portfolio` (JSON) and `/portfolio` (the page, matrix inlined).

Mounted by `serving.app` behind the same API-key dependency as the KPI pages. Each request reads the workspace
afresh (a few YAML files and Delta logs), so a new use case or a new build shows without a restart.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from foundation.core.workspace import Workspace
from foundation.platform.portfolio.matrix import matrix_png
from foundation.platform.portfolio.page import portfolio_html
from foundation.platform.portfolio.report import build_portfolio

router = APIRouter(tags=["portfolio"])


def _entries(request: Request) -> tuple[list, float]:
    served: Workspace = request.app.state.workspace
    workspace = Workspace(root=served.root, settings=served.settings)  # a fresh scan of the YAML per request
    return build_portfolio(workspace), workspace.settings.portfolio.threshold


@router.get("/v1/portfolio", summary="Use cases ranked by qualification, with their detected phase")
async def portfolio_json(request: Request) -> dict[str, Any]:
    entries, threshold = await run_in_threadpool(_entries, request)
    return {"threshold": threshold, "usecases": [e.to_dict() for e in entries]}


def _page(request: Request) -> str:
    entries, threshold = _entries(request)
    return portfolio_html(
        entries, matrix_png(entries, threshold), threshold, nav_base=request.scope.get("root_path", "")
    )


@router.get("/portfolio", response_class=HTMLResponse, include_in_schema=False)
async def portfolio_page(request: Request) -> str:
    return await run_in_threadpool(_page, request)


@router.get("/portfolio/matrix.png", include_in_schema=False)
async def portfolio_matrix(request: Request) -> Response:
    entries, threshold = await run_in_threadpool(_entries, request)
    png = await run_in_threadpool(matrix_png, entries, threshold)
    return Response(png, media_type="image/png")
