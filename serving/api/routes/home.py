"""The pages' front door: `/` (the home page), `/login` (the key exchanged for a session cookie) and `/logout`.

The home page links every page the API serves (KPI catalogue, dashboards, portfolio, API docs) and, from the
settings, the Dagster and MLflow UIs; it lists the served models the visitor's key may use. `/login` and `/logout`
are open (the login form is how a browser gets in); `/` sits behind the pages' dependency
(serving.auth_session.page_principal). All are HTML for people, outside the API's OpenAPI contract, like the other
pages. Rendered on the server, CSS inline, no script: they work offline.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from foundation.core.settings import FoundationSettings
from foundation.core.workspace import scan_usecases
from mlops.registry import uses_tracking_server
from serving.auth_session import PROBLEMS, cleared_cookie, principal_of_page, safe_next, session_cookie
from serving.deps import match_key

log = logging.getLogger("serving.auth_session")
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[2] / "templates"), autoescape=select_autoescape()
)
MAX_FORM_FIELDS = 10

router = APIRouter(tags=["pages"], include_in_schema=False)  # /login and /logout: open
home_router = APIRouter(tags=["pages"], include_in_schema=False)  # /: behind the pages' dependency


def ui_links(settings: FoundationSettings) -> dict[str, str]:
    """Pure: the other UIs the home page links (Dagster always, MLflow when its UI is known), name -> URL."""
    links = {"Dagster UI": settings.api.dagster_ui_url or settings.notifications.dagster_url}
    mlflow = settings.api.mlflow_ui_url
    if mlflow is None and uses_tracking_server(settings.mlflow.tracking_uri):
        mlflow = settings.mlflow.tracking_uri
    if mlflow:
        links["MLflow UI"] = mlflow
    return links


def _root(request: Request) -> str:
    return request.scope.get("root_path", "")


@home_router.get("/", response_class=HTMLResponse, name="home_page")
def home_page(request: Request) -> str:
    state = request.app.state
    principal = principal_of_page(request)
    models = [m.summary() for name, m in sorted(state.models.items()) if principal is None or principal.may_use(name)]
    usecases = sorted(scan_usecases(state.workspace.root).usecases)
    return _templates.get_template("home.html").render(
        base=_root(request),
        usecases=usecases,
        models=models,
        links=ui_links(state.settings),
        who=principal.key_id if principal is not None else None,
        scope=describe_scope(principal),
        open=state.settings.api.open,
    )


def _login_form(request: Request, target: str, message: str | None, status: int) -> HTMLResponse:
    html = _templates.get_template("login.html").render(
        base=_root(request), next=target, message=message, no_keys=not request.app.state.api_keys
    )
    return HTMLResponse(html, status_code=status)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None, reason: str | None = None) -> Response:
    target = safe_next(next)
    if request.app.state.settings.api.open:  # nothing to log in to
        return RedirectResponse(target, 303)
    return _login_form(request, target, PROBLEMS.get(reason or ""), 200)


def form_fields(body: bytes) -> dict[str, str]:
    """Pure: an `application/x-www-form-urlencoded` body's first value per field ({} when it cannot be read)."""
    try:
        parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # more fields than any login form sends
        return {}
    return {name: values[0] for name, values in parsed.items() if values}


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """The key checked as the header would be; a valid one opens a session (303 to where the visitor was going)."""
    state = request.app.state
    fields = form_fields(await request.body())
    target = safe_next(fields.get("next"))
    if state.settings.api.open:
        return RedirectResponse(target, 303)
    presented = fields.get("key", "").strip()
    key = match_key(state.api_keys, presented) if presented else None
    if key is None:
        log.warning("login refused: %s", "no key given" if not presented else "invalid key")
        return _login_form(request, target, "This key is not accepted.", 401)
    secure = request.url.scheme == "https"
    response = RedirectResponse(target, 303)
    response.headers["Set-Cookie"] = session_cookie(state.sessions.issue(key.key_id), state.sessions.ttl_s, secure)
    request.state.key_id = key.key_id
    log.info("login: a session opened for %s (%d s)", key.key_id, state.sessions.ttl_s)
    return response


@router.api_route("/logout", methods=["GET", "POST"])
def logout(request: Request) -> Response:
    """The session cookie cleared; back to the login form."""
    response = RedirectResponse(f"{_root(request)}/login", 303)
    response.headers["Set-Cookie"] = cleared_cookie(request.url.scheme == "https")
    return response


def describe_scope(principal: Any) -> str:
    if principal is None or principal.models is None:
        return "every model"
    return ", ".join(sorted(principal.models))
