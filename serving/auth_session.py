"""Browser sessions for the pages: an API key exchanged once, at `/login`, for a signed session cookie.

A person cannot send an `X-API-Key` header from a browser's address bar, so with keys on the pages (`/`, `/kpis`,
`/dashboards`, `/portfolio`) and their read-only JSON siblings accept, besides the header, a session cookie:
`foundation_session`, signed and timestamped by itsdangerous (HMAC-SHA1 over the payload, the time and a salt),
HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Secure over https, and expired
after `api.session_ttl_s`. It carries the key's id (a hash prefix, never the key): the key's scope is looked up
in `FOUNDATION_API_KEYS` on every request, so a scoped key's session keeps its scope, and removing a key ends its
sessions. Only GET and HEAD requests are authenticated by the cookie: scoring (POST) still needs the key itself.

Without a valid key or session, a browser (a request that accepts `text/html`) is sent to the login form (303);
any other client gets the 401 it always got. An expired, malformed or revoked cookie is a login page (browser) or a
401 that says so, never a 5xx, and the bad cookie is cleared.

The signing secret comes from `FOUNDATION_SESSION_SECRET` (at least 32 characters). Without it each process
generates its own at start-up: sessions end when the process restarts, and with several worker processes a cookie
signed by one worker is refused by the others, so `foundation serve --workers N` generates one secret and hands it
to all its workers. The secret is never logged.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from serving.deps import Principal, presented_key, principal_of

log = logging.getLogger("serving.auth_session")

SESSION_SECRET_ENV = "FOUNDATION_SESSION_SECRET"
COOKIE = "foundation_session"
SALT = "foundation.api.session"
MIN_SECRET_CHARS = 32
SESSION_METHODS = ("GET", "HEAD")


def secret_from_environment() -> tuple[str, bool]:
    """(the signing secret, whether it came from the environment); a generated one when unset. A secret too short
    to resist guessing fails at start-up (its value is never in the message)."""
    secret = os.environ.get(SESSION_SECRET_ENV, "")
    if not secret:
        return secrets.token_urlsafe(32), False
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(
            f"{SESSION_SECRET_ENV} has {len(secret)} characters: use at least {MIN_SECRET_CHARS} "
            '(e.g. python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    return secret, True


@dataclass(frozen=True)
class SessionRead:
    """What a cookie says: the key id it was issued for, or why it is refused (`expired`, `malformed`)."""

    key_id: str | None
    problem: str | None = None


class Sessions:
    """Issues and reads the session cookie's value (itsdangerous: signed, timestamped, salted)."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        self.ttl_s = ttl_s
        self._serializer = URLSafeTimedSerializer(secret, salt=SALT)

    def issue(self, key_id: str) -> str:
        return self._serializer.dumps({"key": key_id})

    def read(self, token: str) -> SessionRead:
        try:
            data = self._serializer.loads(token, max_age=self.ttl_s)
        except SignatureExpired:
            return SessionRead(None, "expired")
        except (BadData, ValueError, TypeError):  # a bad signature, a cut token, not base64, not JSON
            return SessionRead(None, "malformed")
        key = data.get("key") if isinstance(data, dict) else None
        return SessionRead(key, None) if isinstance(key, str) else SessionRead(None, "malformed")


def session_cookie(token: str, ttl_s: int, secure: bool) -> str:
    """The Set-Cookie value that opens a session."""
    flags = f"; Max-Age={ttl_s}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
    return f"{COOKIE}={token}{flags}"


def cleared_cookie(secure: bool = False) -> str:
    """The Set-Cookie value that ends a session (the browser drops the cookie at once)."""
    return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")


def safe_next(target: str | None) -> str:
    """Pure: where to go after login: a path on this site only (`/kpis?q=x`), never another host (`//evil`)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(c in target for c in "\r\n"):
        return "/"
    return target


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def session_principal(state: Any, request: Request) -> tuple[Principal | None, str | None]:
    """(who the session cookie stands for, None) or (None, why not: `missing`, `expired`, `malformed`, `revoked`)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None, "missing"
    read = state.sessions.read(token)
    if read.key_id is None:
        return None, read.problem
    key = next((k for k in state.api_keys if k.key_id == read.key_id), None)
    if key is None:  # the key was removed from FOUNDATION_API_KEYS since the login
        return None, "revoked"
    return Principal(key.key_id, key.models), None


PROBLEMS = {
    "expired": "your session has expired: log in again",
    "malformed": "your session cookie is not valid: log in again",
    "revoked": "the key of your session is no longer accepted: log in with a current key",
}


def login_url(request: Request, problem: str | None) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    root = request.scope.get("root_path", "")
    reason = f"&reason={problem}" if problem in PROBLEMS else ""
    return f"{root}/login?next={quote(safe_next(here), safe='')}{reason}"


async def page_principal(request: Request) -> Principal:
    """The pages' dependency: the key header as everywhere (401 when wrong), else the session cookie on GET/HEAD;
    without either a browser is sent to the login form (303), any other client gets a 401."""
    state = request.app.state
    if state.settings.api.open or presented_key(request.headers) is not None:
        principal = principal_of(state, request.headers)
    else:
        found, problem = session_principal(state, request) if request.method in SESSION_METHODS else (None, "missing")
        if found is None:
            raise _refusal(request, problem)
        principal = found
    request.state.principal = principal
    if principal.key_id != "open":
        request.state.key_id = principal.key_id
    return principal


def _refusal(request: Request, problem: str | None) -> HTTPException:
    headers = {"Set-Cookie": cleared_cookie()} if problem in PROBLEMS else {}
    if wants_html(request):
        return HTTPException(303, "log in first: /login", headers={**headers, "Location": login_url(request, problem)})
    detail = PROBLEMS.get(problem or "", "") or (
        "missing API key: send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`"
    )
    if problem in PROBLEMS:
        detail += " at /login, or send the key as `X-API-Key`"
    return HTTPException(401, detail, headers={**headers, "WWW-Authenticate": "Bearer"})


def principal_of_page(request: Request) -> Principal | None:
    """Who the page is for (set by page_principal), for the pages that show only what a scoped key may use."""
    return getattr(request.state, "principal", None)
