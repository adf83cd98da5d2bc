"""`html_table` extracts from a real local HTTP server (and a local file), through the real ingest."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from foundation.demo.depot_page import running_depot_page, write_depot_page
from foundation.engine.connectors.staging import ExtractError
from foundation.specs.source import HtmlTableExtract

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Depots</title></head><body>
<table id="nav"><tr><td>Home</td><td>About</td></tr></table>
<div class="depots">
<table class="data">
  <caption>  Our   depots </caption>
  <thead><tr><th> Depot </th><th>City</th><th>Bays</th><th>Opened</th></tr></thead>
  <tbody>
    <tr><td>D1</td><td>  Lyon
        </td><td>12</td><td>2019-04-01</td></tr>
    <tr><td>D2</td><td rowspan="2">Paris</td><td>many</td><td>2020-01-15</td></tr>
    <tr><td>D3</td><td>8</td><td></td></tr>
    <tr><td>D4</td><td colspan="2">closed</td><td>2021-06-30</td></tr>
  </tbody>
  <tfoot><tr><td>Total</td><td></td><td>20</td><td></td></tr></tfoot>
</table>
</div>
<table><tr><td>a</td><td>b</td></tr><tr><td>1</td><td>2</td></tr></table>
</body></html>
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on a free loopback port serving a folder; (base URL, folder)."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "depots.html").write_text(PAGE, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def depots(spec: Any, columns: list[dict[str, Any]] | None = None, **extract: Any) -> dict[str, Any]:
    return spec(
        "depots",
        {"type": "html_table", "url": "${DEPOT_PAGE_URL}", **extract},
        load={"mode": "replace"},
        columns=columns or [],
    )


@pytest.fixture
def page_url(site: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"{site[0]}/depots.html"
    monkeypatch.setenv("DEPOT_PAGE_URL", url)
    return url


def test_table_by_caption_trims_cells_and_repeats_spans(make_workspace: Any, spec: Any, page_url: str) -> None:
    kit = make_workspace(sources=[depots(spec, caption="our DEPOTS")])
    report = kit.ingest("depots")
    assert report.rows_landed == 4 and report.notes["origin"] == page_url
    assert report.notes["table"] == "#1, caption 'Our depots'" and report.notes["tables_on_page"] == 3
    rows = kit.rows("depots", order_by="depot")
    assert [(r["depot"], r["city"], r["bays"], r["opened"]) for r in rows] == [
        ("D1", "Lyon", "12", "2019-04-01"),  # whitespace and newlines trimmed
        ("D2", "Paris", "many", "2020-01-15"),
        ("D3", "Paris", "8", None),  # rowspan repeated down; empty cell = null
        ("D4", "closed", "closed", "2021-06-30"),  # colspan repeated across; tfoot not a data row
    ]
    assert rows[0]["_source_file"] == page_url


def test_declared_columns_type_cells_and_quarantine_bad_ones(make_workspace: Any, spec: Any, page_url: str) -> None:
    columns = [
        {"name": "depot_id", "from": "Depot", "type": "varchar", "required": True},
        {"name": "bays", "from": "Bays", "type": "integer"},
        {"name": "opened", "from": "Opened", "type": "date"},
    ]
    kit = make_workspace(sources=[depots(spec, columns, selector="div.depots")])  # a wrapper: its first table
    report = kit.ingest("depots")
    assert report.rows_landed == 2 and report.rows_quarantined == 2 and report.reconciles
    reasons = sorted(r["_invalid_reason"] for r in kit.quarantine("depots"))
    assert reasons == ["bays: cannot read 'closed' as integer", "bays: cannot read 'many' as integer"]
    assert {r["depot_id"]: r["bays"] for r in kit.rows("depots", order_by="depot_id")} == {"D1": 12, "D3": 8}


def test_table_by_index_without_header(make_workspace: Any, spec: Any, page_url: str) -> None:
    kit = make_workspace(sources=[depots(spec, table=2, header_row=None, column_names=["code", "label"])])
    kit.ingest("depots")
    assert [(r["code"], r["label"]) for r in kit.rows("depots", order_by="code")] == [("1", "2"), ("a", "b")]


def test_missing_table_names_the_selector_and_what_exists(make_workspace: Any, spec: Any, page_url: str) -> None:
    kit = make_workspace(sources=[depots(spec, selector="table#depots")])
    with pytest.raises(ExtractError) as error:
        kit.ingest("depots")
    message = str(error.value)
    assert f"uc/depots: {page_url}: selector 'table#depots' matches no table; the page has 3 table(s): " in message
    assert "#0 id=nav (1 rows, first row: Home, About)" in message
    assert "#1 class='data' caption='Our depots' (5 rows, first row: Depot, City, Bays, Opened)" in message
    kit.write_source(depots(spec, table=7))
    with pytest.raises(ExtractError, match="table 7 asked for"):
        kit.ingest("depots")
    kit.write_source(depots(spec, caption="trucks"))
    with pytest.raises(ExtractError, match="no table has a caption containing 'trucks'"):
        kit.ingest("depots")
    assert kit.version("depots") is None


def test_spans_refused_when_asked(make_workspace: Any, spec: Any, page_url: str) -> None:
    kit = make_workspace(sources=[depots(spec, table=1, spans="refuse")])
    with pytest.raises(ExtractError, match=r"row 2 has a cell spanning 1 column\(s\) and 2 row\(s\) \('Paris'\)"):
        kit.ingest("depots")


def test_http_error_and_local_file(
    make_workspace: Any, spec: Any, site: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPOT_PAGE_URL", f"{site[0]}/gone.html")
    kit = make_workspace(sources=[depots(spec, caption="depots")])
    with pytest.raises(ExtractError, match=r"GET http://127\.0\.0\.1:\d+/gone\.html answered HTTP 404"):
        kit.ingest("depots")
    kit.land("pages/depots.html", PAGE)
    monkeypatch.setenv("DEPOT_PAGE_URL", "pages/depots.html")
    assert kit.ingest("depots").rows_landed == 4


def test_spec_says_which_table_once() -> None:
    with pytest.raises(ValidationError, match="not table and caption"):
        HtmlTableExtract.model_validate({"type": "html_table", "url": "x.html", "table": 0, "caption": "a"})
    with pytest.raises(ValidationError, match="needs column_names"):
        HtmlTableExtract.model_validate({"type": "html_table", "url": "x.html", "header_row": None})


def test_demo_depot_page_lands_through_the_shipped_source(make_workspace: Any) -> None:
    repo = Path(__file__).resolve().parents[3]
    kit = make_workspace(sources={"depots": (repo / "usecases/fleet_maintenance/sources/depots.yaml").read_text()})
    landing = kit.root / "landing"
    write_depot_page(landing, [f"DEP-{i:02d}" for i in range(1, 7)])
    with running_depot_page(landing) as url:
        assert os.environ["DEPOT_PAGE_URL"] == url
        report = kit.ingest("depots")
    assert "DEPOT_PAGE_URL" not in os.environ  # restored: the server is gone too
    assert report.rows_landed == 6 and report.rows_quarantined == 0 and report.reconciles
    rows = {r["depot_id"]: r for r in kit.rows("depots", order_by="depot_id")}
    assert rows["DEP-04"]["region"] == "Île-de-France" and rows["DEP-04"]["city"] == "Paris"  # from the rowspan
    assert str(rows["DEP-01"]["opened_on"]) == "2012-03-05" and rows["DEP-01"]["service_bays"] == 14
