"""`foundation kpi` before anything is published, and `foundation run` on an unknown use case: clear messages."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from foundation.cli.main import app


def test_kpi_commands_before_a_run_say_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    runner = CliRunner()
    listing = runner.invoke(app, ["--workspace", str(tmp_path), "kpi", "list"])
    assert listing.exit_code == 1
    assert "foundation run" in listing.output
    as_json = runner.invoke(app, ["--workspace", str(tmp_path), "kpi", "list", "--json"])
    assert as_json.exit_code == 1  # as without --json: nothing published is a problem to fix
    body = json.loads(as_json.stdout)
    assert (body["ok"], body["command"], body["data"]) == (False, "kpi list", [])
    assert "foundation run" in body["errors"][0]["message"]
    shown = runner.invoke(app, ["--workspace", str(tmp_path), "kpi", "show", "fleet_availability"])
    assert shown.exit_code == 2  # an unknown name is a usage error, in every command
    assert "no KPI 'fleet_availability'" in shown.output and "foundation run" in shown.output


def test_run_on_an_unknown_use_case_lists_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    sources = tmp_path / "usecases" / "shop" / "sources"
    sources.mkdir(parents=True)
    (sources / "orders.yaml").write_text(
        "name: orders\ndescription: Orders of the shop\nowner: shop@example.com\nschedule: manual\n"
        "extract: {type: csv, path: landing/orders.csv}\nload: {mode: append}\n"
    )
    result = CliRunner().invoke(app, ["--workspace", str(tmp_path), "run", "shopp"])
    assert result.exit_code == 2
    assert "no use case named 'shopp'; known: shop" in result.output
