"""The pages for people in headless Chromium (Debian's `chromium`, driven by Playwright, never a downloaded
browser), with API keys on: log in with a key, go through every page by its links, log out; an expired and a
malformed session land on the login form. Nothing but 127.0.0.1 is reachable: the pages must carry all they need."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, Route

from serving.auth_session import COOKIE, SESSION_SECRET_ENV
from tests.kpi_catalog.test_catalogue_page import CHROMIUM
from tests.serving.conftest import ALL_KEY, OTHER, RISK, RISK_KEY
from tests.serving.server import Server
from tests.serving.test_pages_login import SECRET, token

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium (apt-get install -y chromium); never skipped in CI",
    ),
]


@pytest.fixture(scope="module")
def server(served_workspace: Path) -> Iterator[str]:
    env = {SESSION_SECRET_ENV: SECRET, "FOUNDATION_API__PREDICTION_LOG": "false"}
    with Server(served_workspace, env) as running:
        running.wait_ready()
        yield running.base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(base_url=server)

    def local_only(route: Route) -> None:  # a page that needs a CDN or a font service breaks here
        host = urlparse(route.request.url).hostname
        route.continue_() if host == "127.0.0.1" else route.abort()

    context.route("**/*", local_only)
    yield context.new_page()
    context.close()


def log_in(page: Page, key: str) -> None:
    page.fill("#key", key)
    page.click("#login button[type=submit]")
    page.wait_for_load_state()


def test_log_in_walk_every_page_and_log_out(page: Page, server: str) -> None:
    p = page
    p.goto("/kpis")
    assert urlparse(p.url).path == "/login" and "next=%2Fkpis" in p.url
    log_in(p, ALL_KEY)
    assert urlparse(p.url).path == "/kpis" and p.inner_text("h1") == "KPI catalogue"
    cookies = p.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [(COOKIE, True, "Strict")]
    assert 28_000 < cookies[0]["expires"] - time.time() <= 28_800  # api.session_ttl_s
    assert p.evaluate("document.cookie") == ""  # no script reads it
    p.click("text=Home")
    assert p.inner_text("h1") == "Data Foundation"
    assert {RISK, OTHER} <= set(p.inner_text("#models").split())
    walked = {
        "#link-kpis": "KPI catalogue",
        "#link-dashboards": "Dashboards",
        "#link-portfolio": "Use-case portfolio",
    }
    for link, title in walked.items():
        p.click(link)
        assert p.inner_text("h1") == title, link
        p.click("a:text-is('Home')")  # every page links home
        assert urlparse(p.url).path == "/"
    p.click("#usecases a")  # a use case's dashboard
    assert urlparse(p.url).path.startswith("/dashboards/")
    p.click("a:text-is('Home')")
    p.click("#link-docs")
    p.wait_for_selector(".opblock")  # Swagger UI rendered from /openapi.json
    assert f"/v1/models/{RISK}/predict" in p.content()
    assert p.locator("button.authorize").count() == 1
    p.goto("/dashboards")
    p.click("#logout")
    assert urlparse(p.url).path == "/login" and p.context.cookies() == []
    p.goto("/portfolio")
    assert urlparse(p.url).path == "/login"


def test_a_scoped_key_sees_its_models_only(page: Page) -> None:
    page.goto("/")
    log_in(page, RISK_KEY)
    assert page.inner_text("#models").split()[0] == RISK
    assert OTHER not in page.inner_text("#models")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (token(ALL_KEY, age_s=28_801), "your session has expired"),
        ("garbage.not.signed", "your session cookie is not valid"),
    ],
    ids=["expired", "malformed"],
)
def test_an_expired_or_malformed_session_lands_on_the_login_form(
    page: Page, server: str, value: str, message: str
) -> None:
    page.context.add_cookies([{"name": COOKIE, "value": value, "url": server}])
    answer = page.goto("/dashboards")
    assert answer.status == 200 and urlparse(page.url).path == "/login"
    assert message in page.inner_text("#message").lower()
    assert page.context.cookies() == []  # the bad cookie is gone
    log_in(page, ALL_KEY)
    assert urlparse(page.url).path == "/dashboards"
