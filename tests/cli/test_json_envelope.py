"""Every command's `--json` output is one envelope, success or not: {"ok", "command", "data", "errors"}, and its exit
code agrees with it (0 when ok, 1 when problems were found; 2, usage, is in test_exit_codes.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.cli.main import app

SOURCE = """\
name: orders
description: Orders of the shop
owner: shop@example.com
schedule: manual
extract: {type: csv, path: landing/orders.csv}
load: {mode: append}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("envelope")
    (root / "foundation.yaml").write_text("state_dir: .foundation\n")
    sources = root / "usecases" / "shop" / "sources"
    sources.mkdir(parents=True)
    (sources / "orders.yaml").write_text(SOURCE)
    return root


COMMANDS = [
    (["check"], "check"),
    (["sources", "list"], "sources list"),
    (["quality"], "quality"),
    (["status"], "status"),
    (["models", "list"], "models list"),
    (["usecase", "list"], "usecase list"),
    (["portfolio"], "portfolio"),
    (["maintenance", "--dry-run"], "maintenance"),
]


@pytest.mark.parametrize(("args", "command"), COMMANDS, ids=[c[1] for c in COMMANDS])
def test_success_output_is_the_envelope(workspace: Path, args: list[str], command: str) -> None:
    result = CliRunner().invoke(app, ["--workspace", str(workspace), *args, "--json"])
    body = json.loads(result.stdout)
    assert list(body) == ["ok", "command", "data", "errors"]
    assert body["command"] == command and body["data"] is not None
    assert result.exit_code == (0 if body["ok"] else 1), result.output
    assert all("message" in e for e in body["errors"])


def test_problems_found_are_ok_false_with_each_error_and_exit_1(workspace: Path, tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    sources = tmp_path / "usecases" / "shop" / "sources"
    sources.mkdir(parents=True)
    (sources / "orders.yaml").write_text(SOURCE.replace("schedule:", "shedule:"))
    for args, command in ((["check"], "check"), (["sources", "list"], "sources list")):
        result = CliRunner().invoke(app, ["--workspace", str(tmp_path), *args, "--json"])
        body = json.loads(result.stdout)
        assert (result.exit_code, body["ok"], body["command"]) == (1, False, command), result.output
        assert any(e["field"] == "shedule" and e["line"] == 4 for e in body["errors"]), body
