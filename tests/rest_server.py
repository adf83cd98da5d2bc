"""A real HTTP server on 127.0.0.1 for REST source tests: routes are Python functions, every request is recorded.

with RestServer() as api:
    api.route("/items", paged(records, page_size=2))
    ... extract: {type: rest_api, base_url: api.url, path: items, ...}
    assert api.requests[0].query == {"page": "1"}
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # bytes as they are; anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (timeouts)


Handler = Callable[[Seen], Reply]


class RestServer:
    """A threaded HTTP server whose routes are set by the test; unknown paths answer 404."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[Seen] = []
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small replies leave at once

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen(parts.path, dict(parse_qsl(parts.query)), {k.lower(): v for k, v in self.headers.items()})
                owner.requests.append(seen)
                handler = owner.routes.get(parts.path)
                reply = handler(seen) if handler else Reply(404, {"error": "no such path"})
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": "application/json", **reply.headers}
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path if path.startswith("/") else "/" + path] = handler

    def hits(self, path: str) -> list[Seen]:
        path = path if path.startswith("/") else "/" + path
        return [r for r in self.requests if r.path == path]

    def __enter__(self) -> RestServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def paged(records: list[dict[str, Any]], page_size: int, first_page: int = 1) -> Handler:
    """page_number pagination: `?page=N` -> {"data": [...], "total_pages": T}."""

    def handler(seen: Seen) -> Reply:
        page = int(seen.query.get("page", first_page)) - first_page
        chunk = records[page * page_size : (page + 1) * page_size]
        total = max(1, -(-len(records) // page_size))
        return Reply(body={"data": chunk, "page": page + first_page, "total_pages": total})

    return handler


def sequence(*replies: Reply | Handler) -> Handler:
    """Answer each request with the next reply (a Reply or a handler); the last one repeats."""
    queue = list(replies)

    def handler(seen: Seen) -> Reply:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        return item(seen) if callable(item) else item

    return handler
