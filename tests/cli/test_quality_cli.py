"""`foundation quality` and `foundation profile` on a small real workspace."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from foundation.cli.main import app

runner = CliRunner()


def _source(checks: str = "") -> str:
    return f"""\
name: sensors
description: Sensor readings for the quality CLI tests
owner: data@example.com
schedule: "@daily"
extract: {{type: csv, path: landing/sensors.csv}}
load: {{mode: replace}}
columns:
  - {{name: sensor_id, type: varchar, required: true}}
  - {{name: ts, type: timestamp, required: true}}
  - {{name: temp_c, type: double}}
  - {{name: site, type: varchar}}
{checks}"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    (tmp_path / "usecases" / "plant" / "sources").mkdir(parents=True)
    (tmp_path / "landing").mkdir()
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rows = [
        f"S-{i:03d},{(now - timedelta(hours=3 * i)).isoformat(sep=' ')},{20 + i % 7}.5,{['north', 'south'][i % 2]}"
        for i in range(40)
    ]
    (tmp_path / "landing" / "sensors.csv").write_text("sensor_id,ts,temp_c,site\n" + "\n".join(rows) + "\n")
    return tmp_path


def _write(workspace: Path, checks: str) -> Path:
    path = workspace / "usecases" / "plant" / "sources" / "sensors.yaml"
    path.write_text(_source(checks))
    return path


def invoke(workspace: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--workspace", str(workspace), *args])
    return result.exit_code, result.output


def test_quality_before_any_load_says_not_loaded(workspace: Path) -> None:
    _write(workspace, "")
    code, out = invoke(workspace, "quality", "--json")
    assert code == 0
    (row,) = json.loads(out)["data"]
    assert row["status"] == "not loaded"


def test_quality_report_lists_every_rule_and_fails_on_an_error(workspace: Path) -> None:
    _write(
        workspace,
        "checks:\n  - freshness: {column: ts, warn_after: 1h, error_after: 400d}\n"
        "  - unique: [site]\n",  # two rows per site value: fails, error severity
    )
    code, _ = invoke(workspace, "ingest")
    assert code == 1  # the blocking unique check failed in Dagster
    code, out = invoke(workspace, "quality", "--json")
    assert code == 1
    results = {r["check"]: r for r in json.loads(out)["data"]}
    assert results["unique__site"]["status"] == "fail"
    assert results["unique__site"]["failing"] == 2
    assert results["freshness__ts"]["status"] == "pass"  # newest ts is now: measured again at report time
    assert results["rows_reconcile"]["status"] == "pass"
    code, text = invoke(workspace, "quality")
    assert "unique__site" in text and "fail" in text


def test_profile_suggests_rules_and_writes_them(workspace: Path) -> None:
    path = _write(workspace, "")
    code, out = invoke(workspace, "profile", "sensors", "--json")
    assert code == 0, out
    result = json.loads(out)["data"]
    columns = {c["name"]: c for c in result["profile"]["columns"]}
    assert result["profile"]["rows"] == 40
    assert columns["site"]["distinct"] == 2
    assert columns["sensor_id"]["pattern"] == "A-999"
    suggested = result["suggested"]
    assert suggested["columns"]["site"]["checks"] == [{"accepted_values": ["north", "south"]}]
    assert suggested["columns"]["sensor_id"]["checks"] == [{"regex": r"^[A-Z]-\d{3}$"}]
    low, high = suggested["columns"]["temp_c"]["checks"][0]["between"]
    assert low <= 20.5 and high >= 26.5
    assert {"unique": ["sensor_id"]} in suggested["checks"]

    code, _ = invoke(workspace, "profile", "sensors", "--write")
    assert code == 0
    written = yaml.safe_load(path.read_text())
    assert written["columns"][3]["checks"] == [{"accepted_values": ["north", "south"]}]
    assert {"unique": ["sensor_id"]} in written["checks"]
    code, out = invoke(workspace, "check")
    assert code == 0, out  # what --write added validates
    code, out = invoke(workspace, "ingest", "--json")
    assert code == 0, out
