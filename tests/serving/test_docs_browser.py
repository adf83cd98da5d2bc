"""/docs (Swagger UI) and /redoc render in headless Chromium with nothing reachable but 127.0.0.1: their scripts and
styles come from the API itself (the fastapi-offline package's files), never from a CDN."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kpi_catalog.test_catalogue_page import CHROMIUM, chromium
from tests.serving.conftest import RISK
from tests.serving.server import Server, call

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium (apt-get install -y chromium); never skipped in CI",
    ),
]
# every host name resolves to nothing: a page that needs a CDN renders blank
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
RENDER = "--virtual-time-budget=20000"  # let the page's script fetch /openapi.json and render it


@pytest.fixture(scope="module")
def server(served_workspace: Path) -> Iterator[str]:
    with Server(served_workspace, {"FOUNDATION_API__PREDICTION_LOG": "false"}) as running:
        running.wait_ready()
        yield running.base


def test_the_docs_pages_load_nothing_from_outside(server: str) -> None:
    for page in ("/docs", "/redoc"):
        status, html = call(f"{server}{page}")
        assert status == 200, page
        assert re.findall(r"""(?:src|href)=["']?https?://""", html) == [], page  # every asset is ours
        for asset in re.findall(r"""(?:src|href)=["']?(/docs/assets/[^"' >]+)""", html):
            assert call(f"{server}{asset}")[0] == 200, asset
    assert call(f"{server}/docs/assets/../../pyproject.toml")[0] == 404


def test_swagger_ui_renders_every_model_route_and_the_authorize_button(server: str, tmp_path: Path) -> None:
    dom = chromium(tmp_path, OFFLINE, RENDER, "--dump-dom", f"{server}/docs").stdout
    assert 'class="swagger-ui' in dom
    assert f"/v1/models/{RISK}/predict" in dom  # rendered from /openapi.json by the bundled script
    assert "btn authorize" in dom  # the securitySchemes give the Authorize button


def test_redoc_renders_the_contract(server: str, tmp_path: Path) -> None:
    dom = chromium(tmp_path, OFFLINE, RENDER, "--dump-dom", f"{server}/redoc").stdout
    assert "Score instances with the model" in dom  # an operation's summary, rendered by redoc.standalone.js
    assert "ApiKeyHeader" in dom and "No API key, or an unknown one." in dom  # the schemes, the documented 401
