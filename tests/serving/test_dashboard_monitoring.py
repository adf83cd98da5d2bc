"""The use-case dashboard's monitoring and explanation sections, on a real trained, scored and monitored workspace:
the top drifting features with their own cut-offs, drift per feature over time (training windows included), realised
precision and recall against the champion's validation figures (also published as KPIs of the catalogue), and the
winner's permutation importance."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.serving.conftest import KEYS, auth
from tests.serving.test_dashboards import build_dashboard_workspace


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from foundation.core.workspace import Workspace, load_model_specs
    from foundation.engine.dbt.publish import write_catalog
    from mlops.kpis import catalog_entries
    from mlops.monitoring import run_monitoring

    root = build_dashboard_workspace(tmp_path_factory.mktemp("monitoring") / "ws")
    workspace = Workspace.open(root)
    (ref,) = load_model_specs(root).models
    result = run_monitoring(workspace, ref)
    write_catalog(workspace, {}, catalog_entries(workspace))
    return root, result


@pytest.fixture
def client(monitored: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from serving.app import create_app

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    with TestClient(create_app(monitored[0]), raise_server_exceptions=False) as test_client:
        yield test_client


def _section(html: str, element_id: str) -> str:
    match = re.search(rf'<table[^>]*id="{element_id}".*?</table>', html, re.S)
    assert match, f"no table #{element_id}"
    return match.group(0)


def test_top_drifting_features_and_drift_over_time(client: TestClient, monitored: tuple[Path, dict]) -> None:
    _, result = monitored
    html = client.get("/dashboards/fleet", headers=auth()).text
    top = _section(html, "drift-top-fleet__risk")
    first = result["drift"][0]
    assert f"<td>{first['feature']}</td>" in top and f"{first['error_at']:.3f}" in top
    grid = _section(html, "drift-history-fleet__risk")
    training_windows = {w["window_end"] for w in result["drift_history"] if w["in_training"]}
    assert training_windows and grid.count("training</small>") == len(training_windows)
    assert grid.count("<tr>") == 1 + min(len(result["drift"]), 8)  # header + one row per feature shown


def test_realised_performance_against_the_validation_figures(client: TestClient, monitored: tuple) -> None:
    _, result = monitored
    assert result["weekly"], "the synthetic labels arrive: realised performance has weeks"
    html = client.get("/dashboards/fleet", headers=auth()).text
    realised = _section(html, "realised-fleet__risk")
    validation = result["validation"]["precision"]
    assert validation is not None and f"{validation:,.2f}" in realised.split("validation (at training)")[1]
    assert html.count('aria-label="realised ') == 2  # a chart each for precision and recall


def test_realised_performance_is_a_kpi_of_the_catalogue(client: TestClient, monitored: tuple) -> None:
    _, result = monitored
    answer = client.get("/v1/kpis/risk_realised_recall", headers=auth())
    assert answer.status_code == 200, answer.text
    kpi = answer.json()
    assert kpi["unit"] == "%" and kpi["dimensions"] == ["figure"]
    weeks = [w for w in result["weekly"] if w["recall"] is not None]
    assert kpi["latest"]["value"] == pytest.approx(round(100 * weeks[-1]["recall"], 2))


def test_the_winners_permutation_importance_is_shown(client: TestClient) -> None:
    html = client.get("/dashboards/fleet", headers=auth()).text
    table = _section(html, "importance-table-fleet__risk")
    features = re.findall(r"<tr><td>(\w+)</td>", table)
    assert "temp" in features[:2]  # the synthetic failures follow temp
