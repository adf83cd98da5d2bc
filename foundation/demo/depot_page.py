"""The demo's depot page: an intranet-style HTML page listing the fleet's depots, served on 127.0.0.1 during the demo.

The `depots` source scrapes it with an `html_table` extract (`caption: Depots`). The page is what such pages look
like: a navigation table first, then the depot table with a caption, a header row, a region cell spanning the depots
of that region (rowspan), padded cells, dates written day first, and a footer row with totals (not data).

`write_depot_page(landing_root, depot_ids)` writes `web/depots.html` (the demo generator calls it);
`running_depot_page(landing_root)` serves that folder over a real local HTTP server on a free port, sets
DEPOT_PAGE_URL (what the source YAML references) and stops the server and restores the environment on exit.
"""

from __future__ import annotations

import functools
import html
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from itertools import groupby
from pathlib import Path
from typing import Any

URL_ENV = "DEPOT_PAGE_URL"
PAGE_PATH = Path("web") / "depots.html"

# Fixed reference data: a depot list changes rarely, and the demo must be reproducible byte for byte.
_CITIES = (
    ("Lyon Nord", "Lyon", "Auvergne-Rhône-Alpes", 14, "2012-03-05"),
    ("Grenoble", "Grenoble", "Auvergne-Rhône-Alpes", 6, "2016-09-19"),
    ("Paris Est", "Paris", "Île-de-France", 22, "2009-01-12"),
    ("Orly", "Paris", "Île-de-France", 10, "2018-06-04"),
    ("Lille", "Lille", "Hauts-de-France", 9, "2014-11-24"),
    ("Marseille Port", "Marseille", "Provence-Alpes-Côte d'Azur", 12, "2011-04-18"),
)


@dataclass(frozen=True)
class Depot:
    depot_id: str
    name: str
    city: str
    region: str
    service_bays: int
    opened: str  # ISO date


def depots(depot_ids: Sequence[str]) -> list[Depot]:
    """The depot reference for the fleet's depot ids, in id order (cities cycle when there are more ids)."""
    return [Depot(depot_id, *_CITIES[i % len(_CITIES)]) for i, depot_id in enumerate(sorted(depot_ids))]


def render_depot_page(rows: Sequence[Depot]) -> str:
    """The page's HTML: rows grouped by region, the region cell spanning its group."""
    e = html.escape
    body: list[str] = []
    ordered = sorted(rows, key=lambda d: (d.region, d.depot_id))
    for region, group in groupby(ordered, key=lambda d: d.region):
        members = list(group)
        for i, d in enumerate(members):
            region_cell = f'<td rowspan="{len(members)}">{e(region)}</td>' if i == 0 else ""
            day, month, year = d.opened[8:10], d.opened[5:7], d.opened[:4]
            body.append(
                f"      <tr>{region_cell}<td> {e(d.depot_id)} </td><td>{e(d.name)}</td><td>{e(d.city)}</td>"
                f"<td>{d.service_bays}</td><td>{day}/{month}/{year}</td></tr>"
            )
    total = sum(d.service_bays for d in rows)
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8"><title>Fleet operations - depots</title></head><body>',
            '  <table class="nav"><tr><td><a href="/">Home</a></td>'
            '<td><a href="depots.html">Depots</a></td></tr></table>',
            "  <h1>Depots</h1>",
            '  <table class="depots">',
            "    <caption>Depots and service bays</caption>",
            "    <thead><tr><th>Region</th><th>Depot</th><th>Name</th><th>City</th><th>Service bays</th>"
            "<th>Opened</th></tr></thead>",
            "    <tbody>",
            *body,
            "    </tbody>",
            f'    <tfoot><tr><td colspan="4">Total</td><td>{total}</td><td></td></tr></tfoot>',
            "  </table>",
            "</body></html>",
            "",
        ]
    )


def write_depot_page(landing_root: Path, depot_ids: Sequence[str]) -> Path:
    """Write `<landing_root>/web/depots.html` (same ids, same bytes)."""
    path = Path(landing_root) / PAGE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_depot_page(depots(depot_ids))
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the demo prints its own progress


@contextmanager
def depot_page_server(folder: Path, port: int = 0) -> Iterator[str]:
    """Serve `folder` on 127.0.0.1:`port` (0: a free port) for the block; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="depot-page", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def running_depot_page(landing_root: Path, port: int = 0) -> Iterator[str]:
    """The depot page over HTTP with DEPOT_PAGE_URL set while it runs; yields the page URL."""
    page = Path(landing_root) / PAGE_PATH
    saved = os.environ.get(URL_ENV)
    with depot_page_server(page.parent, port) as base:
        url = f"{base}{page.name}"
        os.environ[URL_ENV] = url
        try:
            yield url
        finally:
            if saved is None:
                os.environ.pop(URL_ENV, None)
            else:
                os.environ[URL_ENV] = saved
