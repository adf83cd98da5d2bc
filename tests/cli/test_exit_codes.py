"""One convention in every command: exit 0 fine, 1 problems found, 2 usage or an unknown name; with --json, an
error is still JSON on stdout ({"ok": false, "command", "data": null, "errors": [{"message"}]})."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.library_output import library_output_to

SOURCE = """\
name: orders
description: Orders of the shop
owner: shop@example.com
schedule: manual
extract: {type: csv, path: landing/orders.csv}
load: {mode: append}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    sources = tmp_path / "usecases" / "shop" / "sources"
    sources.mkdir(parents=True)
    (sources / "orders.yaml").write_text(SOURCE)
    return tmp_path


UNKNOWN = [
    (["kpi", "show", "nope"], "kpi show", "no KPI 'nope'"),
    (["ingest", "nope"], "ingest", "nope"),
    (["run", "nope"], "run", "no use case named 'nope'; known: shop"),
    (["quality", "nope"], "quality", "nope"),
    (["train", "nope"], "train", "nope"),
    (["models", "show", "nope"], "models show", "no registered model named 'nope'"),
    (["doctor", "--only", "nope"], "doctor", "unknown part(s) nope"),
    (["backfill", "nope", "--from", "2026-01-01", "--to", "2026-01-02"], "backfill", "nope"),
    (["profile", "nope"], "profile", "nope"),
]


@pytest.mark.parametrize(("args", "command", "message"), UNKNOWN, ids=[u[1] for u in UNKNOWN])
def test_an_unknown_name_exits_2_with_the_error_in_json_too(
    workspace: Path, args: list[str], command: str, message: str
) -> None:
    runner = CliRunner()
    plain = runner.invoke(app, ["--workspace", str(workspace), *args])
    assert plain.exit_code == 2, plain.output
    assert plain.stdout == "" and "error" in plain.stderr and message in plain.stderr
    as_json = runner.invoke(app, ["--workspace", str(workspace), *args, "--json"])
    assert as_json.exit_code == 2, as_json.output
    body = json.loads(as_json.stdout)
    assert body["ok"] is False and body["command"] == command and body["data"] is None
    assert message in body["errors"][0]["message"]


def test_library_output_goes_to_the_log_not_the_console(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "logs" / "run.log"
    uv_logger = logging.getLogger("mlflow.utils.uv_utils")
    handlers = list(logging.getLogger("mlflow").handlers)
    with library_output_to(log):
        print("dbt's event stream")
        print("Registered model 'uc__m' already exists. Creating a new version of this model...", file=sys.stderr)
        uv_logger.info("Detected uv project: found uv.lock and pyproject.toml in /ws")
    out, err = capfd.readouterr()
    assert "dbt's event stream" not in out
    assert "already exists" not in err and "Detected uv project" not in err
    text = log.read_text()
    assert "dbt's event stream" in text and "already exists" in text and "Detected uv project" in text
    assert logging.getLogger("mlflow").handlers == handlers  # the log's handler leaves with the block
