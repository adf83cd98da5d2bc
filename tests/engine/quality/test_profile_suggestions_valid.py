"""What `foundation profile --write` adds to a source YAML always passes `foundation check`, whatever the data: an
empty column, a half-empty one, a constant, negative numbers, a single row."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.workspace import WORKSPACE_ENV

runner = CliRunner()

# empty: no value at all; mostly_empty: 1 value in 4 rows (75% null: twice that is above 100); flat: one value;
# below_zero: negative numbers; code: a regex-shaped text.
CSV = "id,empty,mostly_empty,flat,below_zero,code\n1,,x,5,-3.5,A-1\n2,,,5,-1.0,B-2\n3,,,5,-2.25,C-3\n4,,,5,-7.0,D-4\n"
COLUMNS = "\n".join(
    f"  - {{name: {name}, type: {kind}}}"
    for name, kind in [("id", "integer"), ("empty", "double"), ("mostly_empty", "varchar"), ("flat", "integer"),
                       ("below_zero", "double"), ("code", "varchar")]
)  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_workspace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)  # `--workspace` sets it in this process


def test_written_suggestions_pass_check(tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    sources = tmp_path / "usecases" / "shop" / "sources"
    sources.mkdir(parents=True)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "odd.csv").write_text(CSV)
    source = sources / "odd.yaml"
    source.write_text(
        "name: odd\ndescription: awkward columns for profile\nowner: data@example.com\nschedule: manual\n"
        f"extract: {{type: csv, path: landing/odd.csv}}\nload: {{mode: replace}}\ncolumns:\n{COLUMNS}\n"
    )
    written = runner.invoke(app, ["--workspace", str(tmp_path), "profile", "odd", "--write"])
    assert written.exit_code == 0, written.output
    assert "checks" in source.read_text()  # something was written: the check below checks it
    checked = runner.invoke(app, ["--workspace", str(tmp_path), "check"])
    assert checked.exit_code == 0, checked.output + "\n" + source.read_text()
    ingested = runner.invoke(app, ["--workspace", str(tmp_path), "ingest", "--json"])
    assert ingested.exit_code == 0, ingested.output  # and the data it was suggested from passes them
