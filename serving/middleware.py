"""ASGI middleware: request id, body size limit (413), request metrics and the one-line request log, in one pass.

The request log line (logger `serving.http`, message `request`) carries method, route template, status,
latency_ms, model, version, request_id and key_id (a hash prefix) — never a key, never a body."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from fastapi import HTTPException

from serving.errors import error_body
from serving.metrics import ApiMetrics

log = logging.getLogger("serving.http")
access = logging.getLogger("serving.http.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A refused body is read and dropped up to this many bytes before the 413 goes out: a client still sending
# would otherwise get a broken pipe instead of the answer (nginx's lingering close does the same).
DISCARD_AT_MOST = 64 * 1024 * 1024


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the limit of {limit:,} bytes (api.max_body_bytes)")


class ApiMiddleware:
    def __init__(self, app: Any, metrics: ApiMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["connection"] = scope.get("client")  # (host, port): serving.batching paces repeated refusals by it
        status = {"code": 500, "started": False}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if message.get("more_body", False):
                        await _discard_body(receive, DISCARD_AT_MOST - received)
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > self.max_body_bytes:
                if declared <= DISCARD_AT_MOST:
                    await _discard_body(receive, declared)
                await _reply(send_with_id, 413, BodyTooLarge(self.max_body_bytes).detail, request_id)
            else:
                await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge as exc:
            if not status["started"]:
                await _reply(send_with_id, 413, exc.detail, request_id)
        except Exception:  # never a stack trace to the client: log it here, answer 500 with the request id
            log.exception("request %s %s %s failed", request_id, scope["method"], scope.get("path"))
            if not status["started"]:
                await _reply(send_with_id, 500, "internal server error", request_id)
            else:
                raise
        finally:
            self.observe(scope, int(status["code"]), time.perf_counter() - started, request_id)

    def observe(self, scope: dict[str, Any], status: int, seconds: float, request_id: str) -> None:
        """The request's metrics and its one log line (and a warning for a 5xx)."""
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        model = str((scope.get("path_params") or {}).get("name", ""))
        self.metrics.observe_request(route, scope["method"], model, status, seconds)
        if access.isEnabledFor(logging.INFO):
            state = scope.get("state") or {}
            access.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "latency_ms": round(seconds * 1000, 3),
                    "model": model or None,
                    "version": state.get("model_version"),
                    "request_id": request_id,
                    "key_id": state.get("key_id"),
                },
            )
        if status >= 500:
            log.warning("request %s %s %s -> %s", request_id, scope["method"], route, status)


async def _discard_body(receive: Any, budget: int) -> None:
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _reply(send: Any, code: int, detail: str, request_id: str) -> None:
    body = json.dumps(error_body(detail, request_id)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
