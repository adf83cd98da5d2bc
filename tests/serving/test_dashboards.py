"""Use-case dashboards (`/dashboards/{usecase}`): KPIs against target with their chart, the champion's card with the
last training's comparison, the entities at risk; behind the API keys; linked from the catalogue; offline HTML.

A real workspace: the MLOps tests' synthetic truck-days trained by the real pipeline (MLflow sqlite), scored in batch
(Delta), the at-risk KPI published to the catalogue; the app started through its lifespan (TestClient as a context
manager). `test_dashboards_browser.py` drives the same pages in headless Chromium over a socket."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from tests.serving.conftest import ALL_KEY, KEYS, auth

DASHBOARD_KPI = """id: trucks_at_risk
label: Trucks at risk
description: Trucks the champion flags, per predicted day.
owner: ds@example.com
unit: trucks
direction: lower
target: 2
grains: [day, week]
predictions: risk
"""


def build_dashboard_workspace(root: Path) -> Path:
    """A trained, scored workspace with its at-risk KPI published (usecase `fleet`, model `fleet__risk`)."""
    from foundation.engine.dbt.publish import write_catalog
    from mlops.inference import batch_score
    from mlops.kpis import catalog_entries, publish_model_kpis
    from mlops.pipeline import run_training
    from mlops.registry import current_champion, mlflow_client, promote
    from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features

    kit = MlWorkspace(root)
    kit.publish(synthetic_features(trucks=12, days=40))
    kit.write_spec(spec_dict(baseline={"rule": "temp > 101"}))
    (root / "usecases" / "fleet" / "kpis").mkdir(parents=True, exist_ok=True)
    (root / "usecases" / "fleet" / "kpis" / "trucks_at_risk.yaml").write_text(DASHBOARD_KPI, encoding="utf-8")
    report = run_training(kit.workspace, kit.ref())
    if current_champion(mlflow_client(kit.workspace), "fleet__risk") is None:
        promote(kit.workspace, "fleet__risk", report["registered_version"], "dashboard tests", who="tests")
    batch_score(kit.workspace, kit.ref())
    publish_model_kpis(kit.workspace, kit.ref())
    write_catalog(kit.workspace, {}, catalog_entries(kit.workspace))
    return root


@pytest.fixture(scope="module")
def dashboard_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dashboard_workspace(tmp_path_factory.mktemp("dashboards") / "ws")


@pytest.fixture
def client(dashboard_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from serving.app import create_app

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    with TestClient(create_app(dashboard_root), raise_server_exceptions=False) as test_client:
        yield test_client


def flagged_on_last_day(root: Path) -> tuple[str, pd.DataFrame]:
    """Independently of the page: the trucks flagged on the latest predicted day, highest score first."""
    from foundation.core.workspace import Workspace

    uri = f"{Workspace.open(root).lakehouse_root}/ml/fleet/risk/predictions"
    predictions = DeltaTable(uri).to_pandas()
    day = predictions["date_day"].max()
    flagged = predictions[(predictions["date_day"] == day) & predictions["label"]]
    return str(pd.Timestamp(day).date()), flagged.sort_values(["score", "truck_id"], ascending=[False, True])


def test_dashboards_need_a_key(client: TestClient) -> None:
    for path in ("/dashboards", "/dashboards/fleet"):
        response = client.get(path)
        assert response.status_code == 401 and "X-API-Key" in response.json()["detail"]
        assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {ALL_KEY}"}).status_code == 200


def test_index_links_every_use_case_and_unknown_one_is_404(client: TestClient) -> None:
    index = client.get("/dashboards", headers=auth())
    assert 'href="/dashboards/fleet"' in index.text and "Fleet" in index.text
    missing = client.get("/dashboards/nope", headers=auth())
    assert missing.status_code == 404 and "known: fleet" in missing.json()["detail"]


def test_page_shows_kpis_champion_comparison_and_trucks_at_risk(client: TestClient, dashboard_root: Path) -> None:
    page = client.get("/dashboards/fleet", headers=auth())
    assert page.status_code == 200
    html = page.text
    # KPI card: latest value against its target, with the catalogue's SVG chart and its target line.
    card = html[html.index('id="kpi-trucks_at_risk"') :]
    assert 'class="target"' in card and '<polyline class="series"' in card and "target 2 trucks" in card
    # Champion card (the served version) and the last training's comparison, winner column highlighted.
    served = client.get("/v1/models/fleet__risk", headers=auth()).json()
    assert f"<strong>v{served['version']}</strong>" in html
    assert "True Negatives" in html and '<th class="num">As is</th>' in html and 'class="num winner"' in html
    # Trucks at risk: exactly the trucks flagged on the latest day, in score order.
    day, flagged = flagged_on_last_day(dashboard_root)
    assert len(flagged) > 0, "the fixture must flag someone for this test to mean anything"
    assert f"Trucks at risk: {len(flagged)} on {day}" in html
    table = html[html.index('<table class="at-risk">') :]
    table = table[: table.index("</table>")]
    shown = re.findall(r"<tr><td class=\"\">(T\d+)</td>", table)
    assert shown == flagged["truck_id"].tolist()[:50]


def test_pages_work_offline(client: TestClient) -> None:
    for path in ("/dashboards", "/dashboards/fleet"):
        html = client.get(path, headers=auth()).text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no external resource (CDN) in the page"
        assert "<script" not in html and "<link" not in html


def test_catalogue_page_links_the_dashboards(client: TestClient) -> None:
    page = client.get("/kpis", headers=auth())
    assert page.status_code == 200 and '<p id="dashboards">' in page.text
    assert 'href="/dashboards/fleet"' in page.text
