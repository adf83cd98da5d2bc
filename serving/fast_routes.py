"""The scoring routes (`/v1/models/{name}/predict`, `/invocations`, `/v1/models/{name}/invocations`, and
`/v1/models/{name}/predict-by-key`) as a lean ASGI handler in front of FastAPI.

Under load most of a single-row request's CPU went to FastAPI's machinery (routing, dependency resolution, the
response model, `jsonable_encoder`), not to scoring (bench/serving.py, py-spy). This handler answers those routes
directly, with the same functions as FastAPI's routes (serving.deps for keys and models, serving.scoring
for the answers) and the same errors, and orjson for the body both ways; every other request, and any method but
POST, goes on to FastAPI. It sits inside serving.middleware.ApiMiddleware, so the request id, the body limit, the
metrics and the request log are the same. FastAPI's routes stay declared: they document these routes at /docs
and serve them when `api.fast_routes` is off.
"""

from __future__ import annotations

import email.message
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import HTTPException
from starlette.datastructures import Headers

from serving.deps import authorized_model, principal_of
from serving.errors import InvalidInput, error_body, error_items, malformed_body
from serving.key_scoring import predict_by_key_answer
from serving.scoring import invocations_answer, invocations_model, predict_answer


@dataclass(frozen=True)
class Route:
    """What serving.middleware reads from `scope["route"]` for the metrics and the log: the route's template."""

    path: str
    kind: str  # predict | invocations | predict-by-key


PREDICT = Route("/v1/models/{name}/predict", "predict")
PREDICT_BY_KEY = Route("/v1/models/{name}/predict-by-key", "predict-by-key")
NAMED_INVOCATIONS = Route("/v1/models/{name}/invocations", "invocations")
INVOCATIONS = Route("/invocations", "invocations")
_NAMED = re.compile(r"^/v1/models/([^/]+)/(predict|invocations|predict-by-key)$")
NAMED_ROUTES = {"predict": PREDICT, "invocations": NAMED_INVOCATIONS, "predict-by-key": PREDICT_BY_KEY}


def route_of(path: str) -> tuple[Route, str | None] | None:
    """Pure: (the scoring route, the model name in the path) for a path, None for any other path."""
    if path == "/invocations":
        return INVOCATIONS, None
    matched = _NAMED.match(path)
    if matched is None:
        return None
    return NAMED_ROUTES[matched.group(2)], matched.group(1)


def decode_body(body: bytes, content_type: str | None) -> Any:
    """Pure: the body as FastAPI decodes it before any check: JSON for a JSON content type (`application/json`,
    `application/*+json`), the raw bytes otherwise or when empty. InvalidInput (422, `json_invalid`) for a body
    that is not JSON, whatever broke it (serving.schemas.malformed_body: FastAPI's routes answer the same)."""
    if not body or not _is_json(content_type):
        return body
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # orjson is stricter than FastAPI's json.loads (NaN, a BOM, UTF-16): json.loads decides, as in FastAPI
        return json.loads(body)
    except Exception as exc:
        malformed = malformed_body(exc)
        if malformed is None:
            raise
        raise malformed from None


def _is_json(content_type: str | None) -> bool:
    if content_type == "application/json":
        return True
    if not content_type:  # FastAPI's strict_content_type: no content type, no JSON
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def payload_of(decoded: Any) -> dict[str, Any]:
    """Pure: the JSON object of a decoded body; InvalidInput with FastAPI's wording for a `dict` body otherwise."""
    if decoded == b"":
        raise InvalidInput(error_items([{"loc": ("body",), "msg": "Field required", "type": "missing"}]))
    if not isinstance(decoded, dict):  # a list, a number, null, or a body that was not sent as JSON
        raise InvalidInput(
            error_items([{"loc": ("body",), "msg": "Input should be a valid dictionary", "type": "dict_type"}])
        )
    return decoded


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class FastScoringRoutes:
    """ASGI middleware: the scoring routes answered here, the rest passed to `app` (FastAPI)."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: settings, keys, models, batchers, prediction log, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        found = route_of(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if found is None or not self.state.settings.api.fast_routes:
            await self.app(scope, receive, send)
            return
        route, name = found
        scope["route"] = route
        if name is not None:
            scope["path_params"] = {"name": name}
        context = scope.setdefault("state", {})
        headers: dict[str, str] = {}
        try:
            # FastAPI's order: the body read and decoded first (so a client still sending gets the answer, not a
            # broken pipe, and broken JSON is a 422 whoever sends it), then the key, the model, the body's shape
            request_headers = Headers(scope=scope)
            decoded = decode_body(await _read_body(receive), request_headers.get("content-type"))
            principal = principal_of(self.state, request_headers)
            if principal.key_id != "open":
                context["key_id"] = principal.key_id
            if route.kind in ("predict", "predict-by-key"):
                model = authorized_model(self.state, principal, name or "")
            else:
                model = invocations_model(self.state, principal, name, request_headers.get("x-model-name"))
            payload = payload_of(decoded)
            if route.kind == "predict":
                answer = await predict_answer(self.state, context, model, payload)
            elif route.kind == "predict-by-key":
                answer = await predict_by_key_answer(self.state, context, model, payload)
            else:
                answer = await invocations_answer(self.state, context, model, payload)
            status = 200
        except InvalidInput as exc:
            status, answer = 422, error_body(exc, context.get("request_id"), exc.items)
        except HTTPException as exc:  # 400, 401, 403, 404, 413, 503: as FastAPI renders them, with the request id
            status, answer = exc.status_code, error_body(exc.detail, context.get("request_id"))
            headers = dict(exc.headers or {})
        body = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        response_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        response_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
