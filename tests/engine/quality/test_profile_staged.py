"""`foundation profile` on staged sources (sql, html_table, rest_api): staged as the runner stages them, then profiled.

Real parts: a SQLite file, the demo's depot page over a real local HTTP server, the CLI in process.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.workspace import WORKSPACE_ENV
from foundation.demo.depot_page import depot_page_server, write_depot_page

runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_workspace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)  # `--workspace` sets it in this process


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    (tmp_path / "usecases" / "shop" / "sources").mkdir(parents=True)
    return tmp_path


def _source(root: Path, name: str, extract: str, columns: str) -> None:
    text = (
        f"name: {name}\ndescription: {name} for the profile tests\nowner: data@example.com\nschedule: manual\n"
        f"extract: {extract}\nload: {{mode: replace}}\ncolumns:\n{columns}"
    )
    (root / "usecases" / "shop" / "sources" / f"{name}.yaml").write_text(text)


def _profile(root: Path, name: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--workspace", str(root), "profile", name, "--json"])
    return result.exit_code, result.output


def _no_staging_left(root: Path) -> bool:
    staging = root / ".foundation" / "staging"
    return not staging.exists() or not any(staging.iterdir())


def test_profile_of_a_sqlite_source_stages_the_table_first(workspace: Path) -> None:
    (workspace / "data").mkdir()
    con = sqlite3.connect(workspace / "data" / "shop.db")
    con.execute("CREATE TABLE repairs (id INTEGER, opened TEXT, cost REAL, shop TEXT, note TEXT)")
    rows = [(i, f"2024-03-{1 + i % 28:02d} 08:00:00", 100.0 + i, f"shop-{i % 3}", None) for i in range(60)]
    con.executemany("INSERT INTO repairs VALUES (?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    _source(
        workspace,
        "repairs",
        "{type: sql, url: 'sqlite:///data/shop.db', table: repairs}",
        "  - {name: repair_id, from: id, type: bigint, required: true}\n"
        "  - {name: opened_at, from: opened, type: timestamp}\n"
        "  - {name: cost, type: double}\n"
        "  - {name: shop, type: varchar}\n",
    )
    code, out = _profile(workspace, "repairs")
    assert code == 0, out
    result = json.loads(out)["data"]
    assert result["profile"]["rows"] == 60
    columns = {c["name"]: c for c in result["profile"]["columns"]}
    assert columns["repair_id"]["type"] == "BIGINT" and columns["opened_at"]["type"].startswith("TIMESTAMP")
    assert (columns["cost"]["min"], columns["cost"]["max"]) == ("100.0", "159.0")
    suggested = result["suggested"]
    assert suggested["columns"]["shop"]["checks"] == [{"accepted_values": ["shop-0", "shop-1", "shop-2"]}]
    assert {"unique": ["repair_id"]} in suggested["checks"]
    assert _no_staging_left(workspace)


def test_profile_of_an_html_table_scrapes_the_served_page(workspace: Path) -> None:
    page = write_depot_page(workspace / "site", ["D01", "D02", "D03", "D04", "D05", "D06", "D07"])
    _source(
        workspace,
        "depots",
        "{type: html_table, url: '${TEST_DEPOT_PAGE}', caption: Depots}",
        "  - {name: depot_id, from: Depot, type: varchar, required: true}\n"
        "  - {name: region, from: Region, type: varchar}\n"
        "  - {name: service_bays, from: Service bays, type: integer}\n"
        "  - {name: opened_on, from: Opened, type: date, format: '%d/%m/%Y'}\n",
    )
    with depot_page_server(page.parent) as base, pytest.MonkeyPatch.context() as env:
        env.setenv("TEST_DEPOT_PAGE", f"{base}{page.name}")
        code, out = _profile(workspace, "depots")
    assert code == 0, out
    result = json.loads(out)["data"]
    assert result["profile"]["rows"] == 7  # the footer's totals row is not data
    columns = {c["name"]: c for c in result["profile"]["columns"]}
    assert columns["opened_on"]["type"] == "DATE" and columns["opened_on"]["min"] == "2009-01-12"
    assert columns["depot_id"]["pattern"] == "A99"  # padded cells trimmed
    assert columns["region"]["null_percent"] == 0  # the rowspan region cell repeated into each row
    assert result["suggested"]["columns"]["depot_id"]["checks"] == [{"regex": r"^[A-Z]\d{2}$"}]
    assert _no_staging_left(workspace)


def test_profile_of_an_unreachable_source_says_why_without_a_traceback(workspace: Path) -> None:
    _source(
        workspace,
        "depots",
        "{type: html_table, url: 'http://127.0.0.1:9/depots.html', timeout: 2}",
        "  - {name: depot_id, from: Depot, type: varchar}\n",
    )
    code, out = _profile(workspace, "depots")
    assert code == 1
    assert "shop/depots: cannot fetch http://127.0.0.1:9/depots.html" in out
    assert "Traceback" not in out
    assert _no_staging_left(workspace)
