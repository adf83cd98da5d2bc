"""The demo's workshop API: a small paginated, token-protected REST API on 127.0.0.1, for as long as the demo runs.

It serves the maintenance and failure records the demo generator wrote (`landing/fleet_maintenance/{maintenance,
failures}/`), so that the `maintenance` and `failures` sources show a `rest_api` extract end to end:

    GET /api/maintenance?page=N   ->  {"data": [...], "page": N, "total_pages": T}    (pages from 1)
    GET /api/failures?page=N
    Authorization: Bearer <token>  (else 401)

`running_workshop_api(landing_root)` starts it in a thread on a free port, sets WORKSHOP_API_URL and WORKSHOP_TOKEN
(what the source YAML references), and stops it and restores the environment on exit. Pages are serialised once.
`foundation demo serve` (foundation/demo/serve.py) keeps it up outside the demo, on a chosen port and token.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

URL_ENV = "WORKSHOP_API_URL"
TOKEN_ENV = "WORKSHOP_TOKEN"
PAGE_SIZE = 200
ENDPOINTS = {"maintenance": "maintenance/maintenance.ndjson", "failures": "failures/failures.json"}


def read_workshop_records(landing_root: Path) -> dict[str, list[dict[str, Any]]]:
    """The records the demo generator wrote for each endpoint (NDJSON or a JSON array)."""
    records: dict[str, list[dict[str, Any]]] = {}
    for endpoint, relative in ENDPOINTS.items():
        text = (landing_root / relative).read_text(encoding="utf-8")
        if relative.endswith(".ndjson"):
            records[endpoint] = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            records[endpoint] = json.loads(text)
    return records


def paginate_records(records: list[dict[str, Any]], page_size: int) -> list[bytes]:
    """Every page's JSON body, ready to send; an empty endpoint still has one (empty) page."""
    total = max(1, -(-len(records) // page_size))
    return [
        json.dumps({"data": records[i * page_size : (i + 1) * page_size], "page": i + 1, "total_pages": total}).encode()
        for i in range(total)
    ]


@dataclass
class WorkshopApi:
    url: str  # base URL, e.g. http://127.0.0.1:40123/api/
    token: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    pages: dict[str, list[bytes]]
    token: str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small replies (a 401, a short page) leave at once
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._send(401, b'{"error": "missing or wrong bearer token"}')
            return
        pages = self.server.pages.get(parts.path.removeprefix("/api/").strip("/"))
        if pages is None:
            self._send(404, json.dumps({"error": "no such endpoint", "endpoints": sorted(self.server.pages)}).encode())
            return
        try:
            page = int(dict(parse_qsl(parts.query)).get("page", "1"))
        except ValueError:
            self._send(400, b'{"error": "page must be an integer"}')
            return
        if page < 1 or page > len(pages):
            total = len(pages)
            self._send(200, json.dumps({"data": [], "page": page, "total_pages": total}).encode())
            return
        self._send(200, pages[page - 1])

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the demo prints its own progress


@contextmanager
def workshop_api(
    records: dict[str, list[dict[str, Any]]], page_size: int = PAGE_SIZE, port: int = 0, token: str | None = None
) -> Iterator[WorkshopApi]:
    """Serve `records` (endpoint -> records) on 127.0.0.1:`port` (0: a free one), with `token` (None: a fresh
    random one)."""
    server = _Server(("127.0.0.1", port), _Handler)
    server.pages = {name: paginate_records(rows, page_size) for name, rows in records.items()}
    server.token = token or secrets.token_urlsafe(24)
    thread = threading.Thread(target=server.serve_forever, name="workshop-api", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield WorkshopApi(url=f"http://{host}:{port}/api/", token=server.token)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def running_workshop_api(
    landing_root: Path, page_size: int = PAGE_SIZE, port: int = 0, token: str | None = None
) -> Iterator[WorkshopApi]:
    """The workshop API over the demo's landing files, with WORKSHOP_API_URL / WORKSHOP_TOKEN set while it runs."""
    saved = {name: os.environ.get(name) for name in (URL_ENV, TOKEN_ENV)}
    with workshop_api(read_workshop_records(landing_root), page_size, port, token) as api:
        os.environ[URL_ENV], os.environ[TOKEN_ENV] = api.url, api.token
        try:
            yield api
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
