"""The CLI on small real workspaces: exit codes, error format, JSON output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.cli.main import app

runner = CliRunner()

SOURCE = """\
name: readings
description: Sensor readings for the CLI tests
owner: data@example.com
schedule: "@daily"
extract: {type: csv, path: landing/readings*.csv}
load: {mode: merge, primary_key: [id]}
columns:
  - {name: id, type: integer, required: true}
  - {name: temp_c, from: "Temp [C]", type: double}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    sources = tmp_path / "usecases" / "plant" / "sources"
    sources.mkdir(parents=True)
    (tmp_path / "usecases" / "plant" / "usecase.yaml").write_text(
        "title: Plant\ndescription: A plant use case for tests\nowner: plant@example.com\n"
    )
    (sources / "readings.yaml").write_text(SOURCE)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "readings1.csv").write_text("id,Temp [C]\n1,20.5\n2,oops\n3,22\n")
    return tmp_path


def invoke(workspace: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--workspace", str(workspace), *args])
    return result.exit_code, result.output


def test_check_ok(workspace: Path) -> None:
    code, out = invoke(workspace, "check")
    assert code == 0, out
    assert "1 source(s)" in out


def test_check_reports_every_error_with_file_line_and_hint(workspace: Path) -> None:
    bad = workspace / "usecases" / "plant" / "sources" / "bad.yaml"
    bad.write_text(SOURCE.replace("name: readings", "name: other").replace("schedule:", "shedule:"))
    (workspace / "usecases" / "plant" / "sources" / "bad2.yaml").write_text("name: x\n  owner: : :\n")
    code, out = invoke(workspace, "check", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    by_file = {Path(e["path"]).name: e for e in report["errors"] if e["severity"] == "error"}
    assert by_file["bad.yaml"]["line"] == 4
    assert by_file["bad.yaml"]["field"] == "shedule"
    assert "did you mean 'schedule'" in by_file["bad.yaml"]["hint"]
    assert by_file["bad2.yaml"]["message"].startswith("YAML syntax error")
    assert by_file["bad2.yaml"]["line"] == 2


def test_check_text_output_is_file_line_field(workspace: Path) -> None:
    (workspace / "usecases" / "plant" / "sources" / "readings.yaml").write_text(SOURCE.replace("owner:", "ownr:"))
    code, out = invoke(workspace, "check")
    assert code == 1
    assert "usecases/plant/sources/readings.yaml:3: ownr: unknown key 'ownr' (hint: did you mean 'owner'?)" in out
    assert "readings.yaml:1: owner: required field is missing" in out


def test_check_warns_on_glob_matching_nothing(workspace: Path) -> None:
    shutil.rmtree(workspace / "landing")
    code, out = invoke(workspace, "check")
    assert code == 0
    assert "matches no file yet" in out


def test_ingest_json_reconciles_and_sources_list_shows_rows(workspace: Path) -> None:
    code, out = invoke(workspace, "ingest", "--json")
    assert code == 0, out
    (report,) = json.loads(out)["data"]["reports"]
    assert (report["rows_read"], report["rows_landed"], report["rows_quarantined"]) == (3, 2, 1)
    assert report["reconciles"] is True
    code, out = invoke(workspace, "sources", "list", "--json")
    assert code == 0
    (item,) = json.loads(out)["data"]
    assert item["rows"] == 2 and item["delta_version"] == 0
    code, out = invoke(workspace, "sql", "--json", "select id, temp_c from bronze.plant__readings order by id")
    assert json.loads(out)["data"] == [{"id": 1, "temp_c": 20.5}, {"id": 3, "temp_c": 22.0}]


def test_ingest_failure_exits_1_and_names_the_problem(workspace: Path) -> None:
    (workspace / "landing" / "readings1.csv").unlink()
    code, out = invoke(workspace, "ingest")
    assert code == 1
    assert "matched no file" in out


def test_ingest_unknown_selector_lists_known_ones(workspace: Path) -> None:
    code, out = invoke(workspace, "ingest", "nope")
    assert code == 2
    assert "plant/readings" in out


def test_ingest_refuses_invalid_workspace(workspace: Path) -> None:
    (workspace / "usecases" / "plant" / "sources" / "readings.yaml").write_text(SOURCE.replace("merge", "merg"))
    code, out = invoke(workspace, "ingest")
    assert code == 1
    assert "did you mean 'merge'" in out


def test_help_teaches() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("check", "sources", "ingest", "demo", "ui"):
        assert command in result.output
