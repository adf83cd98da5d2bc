"""`foundation sources new USECASE/NAME --type T` and `foundation kpi new USECASE/NAME`: a commented YAML of that
kind with its `$schema` line, that `foundation check` accepts as written (issue 18 item 4, as `dlt init` does)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.scaffold.render import SOURCE_TYPES

runner = CliRunner()


def _cli(root: Path, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["--workspace", str(root), *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("new") / "platform"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    return root


def test_every_source_type_and_a_kpi_pass_check_as_written(platform: Path) -> None:
    for kind in SOURCE_TYPES:
        code, body = _cli(platform, "sources", "new", f"equipment_failure/new_{kind}", "--type", kind)
        assert (code, body["ok"]) == (0, True), body
        (path,) = body["data"]["written"]
        text = (platform / path).read_text()
        schema = text.splitlines()[0].removeprefix("# yaml-language-server: $schema=")
        assert (platform / path).parent.joinpath(schema).resolve().is_file(), schema
        assert f"type: {kind}" in text and "TODO" in text
        assert "maintenance@example.com" in text  # the use case's owner
    code, body = _cli(platform, "kpi", "new", "pumps_running", "--model", "fct_pump_days", "--time", "reading_date")
    assert (code, body["data"]["usecase"]) == (0, "equipment_failure"), body  # the only use case: no prefix needed
    code, report = _cli(platform, "check")
    errors = [e for e in report["errors"] if e["severity"] == "error"]
    assert (code, report["ok"], errors) == (0, True, []), errors
    assert report["data"]["sources"] == 1 + len(SOURCE_TYPES)


def test_check_names_what_a_new_kpi_gets_wrong(platform: Path, tmp_path: Path) -> None:
    code, body = _cli(platform, "kpi", "new", "equipment_failure/wrong_time", "--model", "fct_pump_days")
    assert code == 0, body
    try:
        code, report = _cli(platform, "check")
        assert code == 1
        (error,) = [e for e in report["errors"] if e["severity"] == "error"]
        assert error["path"].endswith("kpis/wrong_time.yaml") and "load_date" in error["message"]
    finally:
        (platform / "usecases/equipment_failure/kpis/wrong_time.yaml").unlink()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sources", "new", "equipment_failure/pump_readings"], "already exists"),
        (["sources", "new", "equipment_failure/x", "--type", "ftp"], "unknown source type 'ftp'"),
        (["sources", "new", "nope/x"], "no use case named 'nope'"),
        (["kpi", "new", "equipment_failure/Bad Name"], "not an identifier"),
    ],
)
def test_a_wrong_name_or_type_exits_2_and_writes_nothing(platform: Path, args: list[str], message: str) -> None:
    before = sorted(platform.rglob("*.yaml"))
    code, body = _cli(platform, *args)
    assert (code, body["ok"], body["data"]) == (2, False, None)
    assert message in body["errors"][0]["message"]
    assert sorted(platform.rglob("*.yaml")) == before
