"""The use-case dashboard in a real browser: `uvicorn --factory serving.app:create_app` over a socket, headless
Chromium (Debian's `chromium` package), nothing reachable but 127.0.0.1, so the page must carry all it needs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kpi_catalog.test_catalogue_page import CHROMIUM, chromium
from tests.serving.server import Server
from tests.serving.test_dashboards import build_dashboard_workspace, flagged_on_last_day

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium (apt-get install -y chromium); never skipped in CI",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = build_dashboard_workspace(tmp_path_factory.mktemp("dashboards_browser") / "ws")
    # A browser sends no API key: the demo's open mode (api.open) for the page; the keys are tested over HTTP.
    with Server(root, env={"FOUNDATION_API__OPEN": "true"}) as running:
        running.wait_ready()
        yield running.base, root


def test_dashboard_renders_in_chromium(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    dom = chromium(tmp_path, "--dump-dom", f"{base}/dashboards/fleet").stdout
    assert "<h1>Fleet</h1>" in dom
    assert '<polyline class="series"' in dom and 'class="target"' in dom  # the KPI chart against its target
    assert "True Negatives" in dom and 'class="num winner"' in dom  # the last training's comparison
    day, flagged = flagged_on_last_day(root)
    assert f"Trucks at risk: {len(flagged)} on {day}" in dom
    assert dom.count("<tr><td") >= len(flagged)  # one row per flagged truck (plus the comparison's rows)
    screenshot = tmp_path / "dashboard.png"
    chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={screenshot}", f"{base}/dashboards/fleet")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
    if os.environ.get("FOUNDATION_KEEP_SCREENSHOTS"):  # to look at it: FOUNDATION_KEEP_SCREENSHOTS=/some/dir
        Path(os.environ["FOUNDATION_KEEP_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        (Path(os.environ["FOUNDATION_KEEP_SCREENSHOTS"]) / "dashboard.png").write_bytes(screenshot.read_bytes())


def test_catalogue_page_links_the_dashboard_in_chromium(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    dom = chromium(tmp_path, "--dump-dom", f"{base}/kpis").stdout
    assert 'href="/dashboards/fleet"' in dom and "Trucks at risk" in dom
    index = chromium(tmp_path, "--dump-dom", f"{base}/dashboards").stdout
    assert 'href="/dashboards/fleet"' in index
