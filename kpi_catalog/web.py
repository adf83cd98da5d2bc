"""The catalogue over HTTP: JSON (`/v1/kpis`, `/v1/kpis/{id}`) and pages (`/kpis`, `/kpis/{id}`), as one APIRouter.

The inference API mounts it with `app.include_router(catalog_router(workspace_root))`; `create_app` serves it alone.
Every request opens the published catalogue afresh (a few small files), so a new build shows without a restart
and a running build never blocks a reader.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.routing import NoMatchFound

from foundation.core.workspace import Workspace
from kpi_catalog.catalogue import KpiCatalog, KpiNotFoundError, Point, status_against_target
from kpi_catalog.chart import history_svg

_templates = Environment(loader=PackageLoader("kpi_catalog", "templates"), autoescape=select_autoescape())
_with_dashboards = _templates.from_string(
    '{% extends "list.html" %}{% block body %}{% if dashboards %}<p id="dashboards">Dashboards: '
    '{% for uc in dashboards %}<a href="{{ base }}/dashboards/{{ uc }}">{{ uc }}</a>{{ " · " if not loop.last }}'
    "{% endfor %}</p>{% endif %}{{ super() }}{% endblock %}"
)


def _fmt(value: float | None) -> str:
    if not isinstance(value, int | float):  # None, or a key the KPI does not declare (e.g. no target)
        return "-"
    return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"


def _slice_chart(series: dict[str, Any], by: str, kpi: dict[str, Any]) -> str:
    """The chart of one dimension value's series, against the KPI's target and alert."""
    points = [Point(date.fromisoformat(p["period"]), p["value"]) for p in series["history"]]
    label = f"{kpi['label']}, {by} {series[by]}"
    return history_svg(points, kpi.get("target"), kpi.get("alert"), kpi["unit"], label)


def _serves(request: Request, route: str, **params: str) -> bool:
    """Whether the app that mounts the catalogue also serves `route` (the inference API's home page, dashboards)."""
    try:
        request.app.url_path_for(route, **params)
    except NoMatchFound:
        return False
    return True


def catalog_router(workspace_root: Path | None = None) -> APIRouter:
    """Routes of the catalogue for the workspace at `workspace_root` (default: found from the current folder)."""
    lakehouse_root = Workspace.open(workspace_root).lakehouse_root
    router = APIRouter(tags=["kpis"])

    def catalog() -> KpiCatalog:
        return KpiCatalog(lakehouse_root)

    def summary(kpi_id: str, grain: str | None) -> dict[str, Any]:
        try:
            return catalog().summary(kpi_id, grain)
        except KpiNotFoundError as exc:
            raise HTTPException(status_code=404, detail=str(exc.args[0])) from exc
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc

    @router.get("/v1/kpis", summary="List KPIs with their latest value against target")
    def list_kpis(q: str | None = Query(None, description="Search words")) -> list[dict[str, Any]]:
        return catalog().list(q)

    def breakdown(kpi_id: str, by: str | None, grain: str) -> list[dict[str, Any]] | None:
        try:
            return None if by is None else catalog().breakdown(kpi_id, by, grain)
        except ValueError as exc:  # not a declared dimension: the message lists them
            raise HTTPException(status_code=422, detail=str(exc)) from exc

    @router.get("/v1/kpis/{kpi_id}", summary="One KPI: definition, lineage, latest value, history")
    def get_kpi(
        kpi_id: str,
        grain: str | None = None,
        by: str | None = Query(None, description="A declared dimension: adds one series per value of it"),
    ) -> dict[str, Any]:
        item = summary(kpi_id, grain)
        history = catalog().history(kpi_id, item["grain"]).get(None, [])
        sliced = breakdown(kpi_id, by, item["grain"])
        extra = {} if sliced is None else {"by": by, "series": sliced}
        return {**item, "history": [{"period": p.period.isoformat(), "value": p.value} for p in history], **extra}

    @router.get("/kpis", response_class=HTMLResponse, include_in_schema=False)
    def list_page(request: Request, q: str | None = None) -> str:
        current = catalog()
        # Where the app also serves the use-case dashboards (serving.api.routes.dashboards), link each one.
        try:
            request.app.url_path_for("dashboard_page", usecase="_")
            dashboards = sorted({current.definition(i)["usecase"] for i in current.ids()})  # no history read
        except NoMatchFound:
            dashboards = []
        return _with_dashboards.render(
            dashboards=dashboards,
            kpis=current.list(q),
            q=q,
            published=current.published,
            published_at=current.generated_at,
            base=request.scope.get("root_path", ""),
            home=_serves(request, "home_page"),
            fmt=_fmt,
        )

    @router.get("/kpis/{kpi_id}", response_class=HTMLResponse, include_in_schema=False)
    def kpi_page(request: Request, kpi_id: str, grain: str | None = None, by: str | None = None) -> str:
        item = summary(kpi_id, grain)
        current = catalog()
        history = current.history(kpi_id, item["grain"]).get(None, [])
        slices = [
            (str(s[by]), s, _slice_chart(s, by, item))  # the dimension's value, its summary, its chart
            for s in breakdown(kpi_id, by, item["grain"]) or []
        ]
        return _templates.get_template("kpi.html").render(
            k=item,
            history=history,
            chart=history_svg(history, item.get("target"), item.get("alert"), item["unit"], item["label"]),
            by=by,
            slices=slices,
            published_at=current.generated_at,
            base=request.scope.get("root_path", ""),
            home=_serves(request, "home_page"),
            fmt=_fmt,
            state_of=lambda v: status_against_target(v, item["direction"], item.get("target"), item.get("alert")),
        )

    return router


def create_app(workspace_root: Path | None = None) -> FastAPI:
    """The catalogue alone (the inference API mounts the same router)."""
    app = FastAPI(title="KPI catalogue")
    app.include_router(catalog_router(workspace_root))
    return app
