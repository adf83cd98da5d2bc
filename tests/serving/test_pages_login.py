"""Browser login for the pages (serving.auth_session, serving.api.routes.home) over HTTP: the key exchanged for a
signed session cookie, what the cookie opens and what it does not, and every bad cookie a clear 4xx or the login
page, never a 5xx. (The same in headless Chromium: tests/serving/test_pages_browser.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from serving.auth_session import COOKIE, SALT, SESSION_SECRET_ENV, safe_next
from serving.deps import key_id
from tests.serving.conftest import ALL_KEY, KEYS, OTHER, RISK, RISK_KEY, auth

SECRET = "a-session-secret-of-forty-characters-000"
HTML = {"Accept": "text/html,application/xhtml+xml"}
PAGES = ["/", "/kpis", "/dashboards", "/portfolio"]


@pytest.fixture
def pages(served_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from serving.app import create_app

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    monkeypatch.setenv(SESSION_SECRET_ENV, SECRET)
    monkeypatch.setenv("FOUNDATION_API__PREDICTION_LOG", "false")
    with TestClient(create_app(served_workspace), raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


def login(client: TestClient, key: str, target: str = "/") -> str:
    answer = client.post("/login", data={"key": key, "next": target})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == target
    return answer.headers["set-cookie"]


def token(key: str, age_s: int = 0, secret: str = SECRET) -> str:
    """A session token as the server issues one, signed `age_s` seconds ago."""

    class Aged(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age_s

    return URLSafeTimedSerializer(secret, salt=SALT, signer=Aged).dumps({"key": key_id(key)})


def test_a_browser_without_a_session_gets_the_login_form_and_an_api_client_its_401(pages: TestClient) -> None:
    for page in PAGES:
        answer = pages.get(page, headers=HTML)
        assert answer.status_code == 303, page
        assert answer.headers["location"].startswith("/login?next=" + page.replace("/", "%2F"))
    form = pages.get("/login?next=%2Fkpis")
    assert form.status_code == 200 and 'name="key"' in form.text and 'value="/kpis"' in form.text
    for path in ("/kpis", "/v1/kpis", "/v1/portfolio"):  # no Accept: text/html: the API's 401, unchanged
        answer = pages.get(path)
        assert answer.status_code == 401 and set(answer.json()) == {"detail", "errors", "request_id"}
        assert answer.headers["www-authenticate"] == "Bearer"
    assert pages.get("/kpis", headers={**HTML, "X-API-Key": "wrong"}).status_code == 401  # a wrong key stays a 401


def test_login_sets_a_signed_httponly_strict_cookie_that_opens_every_page(pages: TestClient) -> None:
    cookie = login(pages, ALL_KEY, "/kpis?q=fleet")
    assert cookie.startswith(f"{COOKIE}=") and ALL_KEY not in cookie and key_id(ALL_KEY) not in cookie
    flags = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Path=/" in flags
    assert "Max-Age=28800" in flags  # api.session_ttl_s
    for page in PAGES:
        answer = pages.get(page, headers=HTML)
        assert answer.status_code == 200, page
        assert 'href="/"' in answer.text or page == "/", page  # every page links home
    home = pages.get("/", headers=HTML).text
    for link in ("/kpis", "/dashboards", "/portfolio", "/docs", "http://127.0.0.1:3000"):
        assert f'href="{link}"' in home, link
    assert f"<code>{RISK}</code>" in home and f"<code>{OTHER}</code>" in home
    assert pages.get("/v1/kpis").status_code == 200  # the pages' JSON siblings too (GET)


def test_a_session_is_for_reading_pages_only_scoring_still_needs_the_key(
    pages: TestClient, instances: list[dict]
) -> None:
    login(pages, ALL_KEY)
    assert pages.post(f"/v1/models/{RISK}/predict", json={"instances": instances[:1]}).status_code == 401
    assert pages.get("/v1/models").status_code == 401
    keyed = pages.post(f"/v1/models/{RISK}/predict", json={"instances": instances[:1]}, headers=auth())
    assert keyed.status_code == 200


def test_a_scoped_keys_session_keeps_its_scope(pages: TestClient) -> None:
    login(pages, RISK_KEY)
    home = pages.get("/", headers=HTML).text
    assert f"<code>{RISK}</code>" in home and f"<code>{OTHER}</code>" not in home
    assert key_id(RISK_KEY) in home and RISK in home


def test_a_wrong_key_at_login_is_a_401_form_and_no_cookie(pages: TestClient) -> None:
    for body in ({"key": "not-a-key", "next": "/kpis"}, {"next": "/"}, {}):
        answer = pages.post("/login", data=body)
        assert answer.status_code == 401 and "not accepted" in answer.text and "set-cookie" not in answer.headers
    hostile = pages.post(
        "/login", content=b"key=\xff\xfe&" + b"&".join(b"f%d=1" % i for i in range(50)), headers={"Content-Type": "x"}
    )
    assert hostile.status_code == 401


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "expired"),  # signed by us, older than api.session_ttl_s
        ("not-a-session", "malformed"),
        ("e30.aGVsbG8.c2ln", "malformed"),
        (token(ALL_KEY, secret="another-secret-of-forty-characters-00000"), "malformed"),
        (token("a-key-no-longer-configured"), "revoked"),
    ],
    ids=["expired", "not-signed", "cut", "other-secret", "revoked"],  # tokens differ per process: not in the ids
)
def test_a_bad_session_is_the_login_page_or_a_clear_401_and_is_cleared(
    pages: TestClient, value: str | None, reason: str
) -> None:
    pages.cookies.set(COOKIE, value if value is not None else token(ALL_KEY, age_s=28_801))
    browser = pages.get("/dashboards", headers=HTML)
    assert browser.status_code == 303 and browser.headers["location"].endswith(f"&reason={reason}")
    assert browser.headers["set-cookie"].startswith(f"{COOKIE}=; Max-Age=0")
    form = pages.get(browser.headers["location"])
    assert form.status_code == 200 and "log in" in form.text.lower() and 'id="message"' in form.text
    api = pages.get("/v1/kpis")
    assert api.status_code == 401 and "/login" in api.json()["detail"]


def test_logout_clears_the_cookie(pages: TestClient) -> None:
    login(pages, ALL_KEY)
    for method in ("get", "post"):
        answer = getattr(pages, method)("/logout")
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        assert answer.headers["set-cookie"].startswith(f"{COOKIE}=; Max-Age=0")
    assert pages.get("/", headers=HTML).status_code == 303


def test_a_short_session_secret_fails_at_start_up(served_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.app import create_app

    monkeypatch.setenv(SESSION_SECRET_ENV, "short-secret")
    with pytest.raises(ValueError, match="FOUNDATION_SESSION_SECRET has 12 characters") as raised:
        create_app(served_workspace)
    assert "short-secret" not in str(raised.value)


def test_after_login_only_a_path_on_this_site() -> None:
    assert safe_next("/kpis?q=fleet") == "/kpis?q=fleet"
    for hostile in ("//evil.example", "https://evil.example", "/\\evil.example", "kpis", "", None, "/a\r\nSet-Cookie"):
        assert safe_next(hostile) == "/"
