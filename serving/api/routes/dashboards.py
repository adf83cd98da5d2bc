"""Use-case dashboards: `/dashboards` (the index) and `/dashboards/{usecase}` (one page per use case).

A page shows the use case's KPIs against their targets with their history (the catalogue's inline SVG chart), the
current champion of each of its models with the comparison table of the last training run, and the entities the
champion flags in the latest period (for the fleet: the trucks at risk). Everything is rendered on the server,
CSS and SVG inline, no script and no CDN: the page works offline. Mounted by `serving.app` behind the same API-key
dependency as the KPI pages; every request reads the published catalogue, training reports and predictions afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from foundation.core.workspace import Workspace, load_kpis, load_model_specs, scan_usecases
from foundation.specs.model import CostSpec, SelectionSpec
from kpi_catalog.catalogue import KpiCatalog, Point
from kpi_catalog.chart import history_svg
from mlops.inference import at_risk_entities
from mlops.kpis import model_kpis
from mlops.registry import read_json
from mlops.report import comparison_rows
from serving.shadow_report import against_outcomes, challenger_comparison

router = APIRouter(tags=["dashboards"])
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[2] / "templates"), autoescape=select_autoescape()
)
HISTORY_POINTS = 60  # the latest periods charted per KPI


@dataclass
class ModelCard:
    """One model spec of the use case: its served champion, last training run and "at risk" list."""

    name: str
    description: str
    champion: dict[str, Any] | None  # ServedModel.detail() subset; None when no champion is served
    candidate: str | None
    training: dict[str, Any] | None  # the last training report (mlops.pipeline)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    at_risk: dict[str, Any] | None = None
    at_risk_label: str | None = None
    challenger: list[dict[str, Any]] | None = None  # champion vs challenger on the same requests (shadow_report)
    challenger_outcomes: list[dict[str, Any]] | None = None  # the same, against the outcomes known since


def _cell(value: Any) -> str:
    """An identifier or time as is (run 9876, not 9,876); a day stored as a timestamp reads as the day."""
    if isinstance(value, datetime) and value.time() == time(0):
        return value.date().isoformat()
    return "-" if value is None else str(value)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    if float(value).is_integer() or abs(value) >= 1000:  # counts read as counts (4 trucks, not 4.00)
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _when(value: Any) -> str:
    """A timestamp to the minute, UTC as stored ('2026-11-28 18:04')."""
    return "-" if value is None else str(value).replace("T", " ")[:16]


def usecases(workspace: Workspace) -> dict[str, Any]:
    """Use case name -> its usecase.yaml spec (None when missing or invalid), by name."""
    return dict(sorted(scan_usecases(workspace.root).usecases.items()))


def _title(name: str, spec: Any) -> str:
    return spec.title if spec is not None else name


def kpi_cards(workspace: Workspace, usecase: str) -> list[dict[str, Any]]:
    """The use case's published KPIs, each with its latest value, state against target and history chart."""
    catalog = KpiCatalog.of(workspace)
    cards = []
    for item in catalog.list():
        if item["usecase"] != usecase:
            continue
        points = catalog.history(item["id"], item["grain"]).get(None, [])[-HISTORY_POINTS:]
        chart = history_svg(points, item.get("target"), item.get("alert"), item["unit"], item["label"])
        cards.append({"target": None, "alert": None, **item, "chart": chart})  # a KPI may declare neither
    return cards


def model_cards(request: Request, workspace: Workspace, usecase: str) -> list[ModelCard]:
    from mlops.pipeline import report_path  # lazy: it imports scikit-learn (1.4 s at API start-up, measured)

    served = getattr(request.app.state, "models", {}) or {}
    kpis = load_kpis(workspace.root).kpis
    cards = []
    principal = getattr(request.state, "principal", None)  # a scoped key (or its session) sees its models only
    for ref in load_model_specs(workspace.root).models:
        if ref.usecase != usecase or (principal is not None and not principal.may_use(ref.registered_name)):
            continue
        model = served.get(ref.registered_name)
        path = report_path(workspace, ref)
        training = read_json(path) if path.exists() else None
        card = ModelCard(
            ref.registered_name,
            ref.spec.description,
            model.detail() if model is not None else None,
            model.tags.get("foundation.candidate") if model is not None else None,
            training,
        )
        if training:
            cost = CostSpec(currency=training["currency"], false_negative=0) if training.get("currency") else None
            selection = SelectionSpec.model_construct(metric=training["metric"], min_precision=None, cost=cost)
            card.header = ["", *training["comparison"]]
            card.rows = comparison_rows(training["comparison"], selection)
        card.challenger = challenger_comparison(workspace, ref.registered_name)
        if card.challenger:
            card.challenger_outcomes = against_outcomes(workspace, ref.registered_name, ref.usecase, ref.spec)
        labels = [k.spec.label for k in model_kpis(kpis, ref)]
        if labels:  # a model KPI counts what the champion flags: list who they are
            card.at_risk = at_risk_entities(workspace, ref)
            card.at_risk_label = labels[0]
        cards.append(card)
    return cards


def _workspace(request: Request) -> Workspace:
    served: Workspace = request.app.state.workspace
    return Workspace(root=served.root, settings=served.settings)


def _index(request: Request) -> str:
    titles = {name: _title(name, spec) for name, spec in usecases(_workspace(request)).items()}
    return _templates.get_template("dashboards.html").render(usecases=titles, base=request.scope.get("root_path", ""))


def _page(request: Request, usecase: str) -> str:
    workspace = _workspace(request)
    specs = usecases(workspace)
    if usecase not in specs:
        raise HTTPException(404, f"no use case {usecase!r}; known: {', '.join(specs) or 'none'}")
    spec = specs[usecase]
    return _templates.get_template("dashboard.html").render(
        usecase=usecase,
        title=_title(usecase, spec),
        description=spec.description if spec else "",
        kpis=kpi_cards(workspace, usecase),
        models=model_cards(request, workspace, usecase),
        monitoring=monitoring_views(workspace, usecase),
        base=request.scope.get("root_path", ""),
        fmt=_fmt,
        cell=_cell,
        when=_when,
    )


@router.get("/dashboards", response_class=HTMLResponse, include_in_schema=False)
async def dashboards_index(request: Request) -> str:
    return await run_in_threadpool(_index, request)


@router.get("/dashboards/{usecase}", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_page(request: Request, usecase: str) -> str:
    return await run_in_threadpool(_page, request, usecase)


# -- monitoring: drift over time, the top drifting features, realised performance against validation --------------

TOP_DRIFTING = 5  # features listed as "top drifting"
HEATMAP_FEATURES = 8  # features drawn in the drift-over-time grid


def _chronological_windows(history: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """The windows of the drift history, oldest first: (window end, inside training)."""
    seen = {(w["window_end"], w["in_training"]) for w in history}
    return sorted(seen, key=lambda w: w[0])


def _realised_chart(
    weekly: list[dict[str, Any]],
    figure: str,
    validation: float | None,
    floor: float | None,
    scale: float = 100,
    unit: str = "%",
) -> str:
    """One realised figure per week against its validation value and the spec's floor (a regression: ceiling)."""
    points = [
        Point(datetime.fromisoformat(str(w["week"])[:10]).date(), None if w[figure] is None else scale * w[figure])
        for w in weekly
    ]
    target = None if validation is None else scale * validation
    alert = None if floor is None else scale * floor
    return history_svg(points, target, alert, unit, f"realised {figure}")


def _realised_charts(report: dict[str, Any], ref: Any) -> dict[str, str]:
    """Realised precision and recall per week in % (a regression: realised MAE and RMSE in the target's unit)."""
    if not report["weekly"]:
        return {}
    cut = ref.spec.monitoring.performance
    validation = report.get("validation") or {}
    if ref.spec.is_regression:
        lines = {"mae": cut.max_mae, "rmse": cut.max_rmse}
        return {
            f: _realised_chart(report["weekly"], f, validation.get(f), line, 1, ref.spec.target)
            for f, line in lines.items()
        }
    lines = {"precision": cut.min_precision, "recall": cut.min_recall}
    return {f: _realised_chart(report["weekly"], f, validation.get(f), line) for f, line in lines.items()}


def monitoring_view(workspace: Workspace, ref: Any) -> dict[str, Any] | None:
    """The model's latest monitoring pass as the dashboard draws it (None before the first pass)."""
    from mlops.monitoring import read_monitoring_report  # lazy: pandas and deltalake, only for a model's page

    report = read_monitoring_report(workspace, ref)
    if report is None:
        return None
    drift = report["drift"]
    shown = [d["feature"] for d in drift[:HEATMAP_FEATURES]]
    windows = _chronological_windows([w for w in report.get("drift_history", []) if w["feature"] in shown])
    cells = {(w["feature"], w["window_end"], w["in_training"]): w for w in report.get("drift_history", [])}
    return {
        **report,
        "regression": ref.spec.is_regression,
        "top": [d for d in drift if d["status"] != "stable"][:TOP_DRIFTING] or drift[:TOP_DRIFTING],
        "grid": {"features": shown, "windows": windows, "cells": cells},
        "charts": _realised_charts(report, ref),
    }


def monitoring_views(workspace: Workspace, usecase: str) -> dict[str, dict[str, Any] | None]:
    """Registered model name -> its monitoring view, for every model spec of the use case."""
    return {
        ref.registered_name: monitoring_view(workspace, ref)
        for ref in load_model_specs(workspace.root).models
        if ref.usecase == usecase
    }
