"""`ingest.allowed_roots`: a source reads only under the workspace, the lakehouse and the declared roots.

Judged after `${VAR}` expansion and after resolving symlinks, by `foundation check` (file:line error) and again by
the load itself (same message), on real files, symlinks, SQLite databases and Delta tables.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from foundation.platform.check import check_workspace
from foundation.specs.errors import SpecError
from foundation.specs.roots import AllowedRoots, PathNotAllowedError, glob_base

CSV = "id,value\n1,1.5\n2,2.5\n"
SOURCE = """\
name: readings
description: Readings of the test rig
owner: data-team@example.com
schedule: manual
extract:
  type: csv
  path: {path}
load: {{mode: append}}
"""


def roots_errors(kit: Any) -> list[SpecError]:
    return [e for e in check_workspace(kit.open()) if "ingest.allowed_roots" in e.hint]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the workspace (tmp_path/ws), holding a CSV the process can read."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.csv").write_text(CSV, encoding="utf-8")
    return folder


# -- pure parts ----------------------------------------------------------------------------------------------------


def test_roots_match_whole_segments_locally_and_on_object_stores(tmp_path: Path) -> None:
    roots = AllowedRoots.of(tmp_path / "ws", ["/data/landing", "s3://bucket/landing/"], "s3://lake/foundation")
    assert roots.allows(str(tmp_path / "ws" / "landing" / "a.csv"))
    assert roots.allows("/data/landing") and roots.allows("/data/landing/x/y.csv")
    assert not roots.allows("/data/landing2/y.csv")  # a prefix of the name is not a folder
    assert not roots.allows("/data")
    assert roots.allows("s3://bucket/landing/t") and roots.allows("S3://bucket/landing")
    assert not roots.allows("s3://bucket/landing-x/t") and not roots.allows("s3://other/landing/t")
    assert not roots.allows("s3://bucket/Landing/t")  # object keys are case-sensitive
    assert not roots.allows("s3://bucket/landing/../secrets/t")  # climbing is judged after normalising
    assert roots.allows("s3://lake/foundation/gold/uc/t")  # the lakehouse itself
    assert roots.locate(tmp_path / "ws", "sub/../x.csv") == str((tmp_path / "ws" / "x.csv").resolve())


def test_glob_base_is_the_folder_before_the_first_wildcard() -> None:
    assert glob_base("landing/*.csv") == "landing"
    assert glob_base("/etc/pass*") == "/etc"
    assert glob_base("landing/2024/**/x.csv") == "landing/2024"
    assert glob_base("*.csv") == "."
    assert glob_base("landing/file.csv") == "landing/file.csv"


# -- foundation check ----------------------------------------------------------------------------------------------


def test_check_refuses_an_absolute_system_path_with_file_line_and_setting(make_workspace: Any) -> None:
    kit = make_workspace()
    yaml_path = kit.write_source(SOURCE.format(path="/etc/passwd"), name="readings")
    (error,) = roots_errors(kit)
    assert (error.path, error.line, error.field, error.severity) == (yaml_path, 7, "extract.path", "error")
    assert "'/etc/passwd' resolves to /etc/passwd, outside the allowed roots" in error.message
    assert str(kit.root) in error.message
    assert "ingest.allowed_roots" in error.hint and "foundation.yaml" in error.hint
    assert error.format(relative_to=kit.root).startswith("usecases/uc/sources/readings.yaml:7: extract.path: ")


def test_check_refuses_a_symlink_in_the_workspace_pointing_outside(make_workspace: Any, outside: Path) -> None:
    kit = make_workspace(files={"landing/ok.csv": CSV})
    (kit.root / "landing" / "link.csv").symlink_to(outside / "secret.csv")
    kit.write_source(SOURCE.format(path="landing/*.csv"), name="readings")
    (error,) = roots_errors(kit)
    assert f"resolves to {outside / 'secret.csv'}" in error.message
    assert "'landing/*.csv'" in error.message


def test_check_refuses_a_climb_and_a_symlinked_folder(make_workspace: Any, outside: Path) -> None:
    kit = make_workspace()
    (kit.root / "landing").symlink_to(outside, target_is_directory=True)
    kit.write_source(SOURCE.format(path="landing/*.csv"), name="readings")
    kit.write_source(SOURCE.replace("readings", "climb").format(path=f"{kit.root}/../outside/secret.csv"), name="climb")
    errors = roots_errors(kit)
    assert sorted(e.path.name for e in errors) == ["climb.yaml", "readings.yaml"]
    assert all(str(outside) in e.message for e in errors)


def test_declared_roots_allow_a_folder_outside(make_workspace: Any, outside: Path) -> None:
    kit = make_workspace(settings={"ingest": {"allowed_roots": [str(outside)]}})
    kit.write_source(SOURCE.format(path=str(outside / "*.csv")), name="readings")
    assert roots_errors(kit) == []
    report = kit.ingest("readings")
    assert report.rows_landed == 2


def test_every_path_field_of_a_source_is_judged(make_workspace: Any, outside: Path) -> None:
    write_deltalake(str(outside / "table"), pa.table({"id": [1]}))
    sqlite3.connect(outside / "db.sqlite").close()
    (outside / "page.html").write_text("<table><tr><th>a</th></tr><tr><td>1</td></tr></table>")
    kit = make_workspace()
    head = "description: A source of the test rig\nowner: data-team@example.com\nschedule: manual\n"
    kit.write_source(
        f"name: mirror\n{head}extract: {{type: delta, path: {outside / 'table'}}}\nload: {{mode: replace}}\n",
        name="mirror",
    )
    kit.write_source(
        f"name: repairs\n{head}extract:\n  type: sql\n  url: sqlite:///{outside / 'db.sqlite'}\n  table: t\n"
        "load: {mode: replace}\n",
        name="repairs",
    )
    kit.write_source(
        f"name: depots\n{head}extract:\n  type: html_table\n  url: file://{outside / 'page.html'}\n"
        "load: {mode: replace}\n",
        name="depots",
    )
    kit.write_source(  # several paths: the second one is outside, and its own list line is named
        f"name: many\n{head}extract:\n  type: csv\n  path:\n    - landing/*.csv\n    - {outside}/*.csv\n",
        name="many",
    )
    found = {(e.path.name, e.line, e.field) for e in roots_errors(kit)}
    assert found == {
        ("mirror.yaml", 5, "extract.path"),
        ("repairs.yaml", 7, "extract.url"),
        ("depots.yaml", 7, "extract.url"),
        ("many.yaml", 9, "extract.path[1]"),
    }


def test_a_delta_table_in_the_workspace_whose_data_file_leads_outside_is_refused(
    make_workspace: Any, outside: Path
) -> None:
    write_deltalake(str(outside / "table"), pa.table({"id": [99]}))
    kit = make_workspace()
    inside = kit.root / "landing" / "mirror"
    write_deltalake(str(inside), pa.table({"id": [1]}))
    (part,) = inside.glob("part-*.parquet")
    (foreign,) = (outside / "table").glob("part-*.parquet")
    part.unlink()
    part.symlink_to(foreign)  # deltalake keeps paths under the table folder; a symlink does not
    head = "description: A source of the test rig\nowner: data-team@example.com\nschedule: manual\n"
    kit.write_source(
        f"name: mirror\n{head}extract: {{type: delta, path: landing/mirror}}\nload: {{mode: replace}}\n", name="mirror"
    )
    (error,) = roots_errors(kit)
    assert error.field == "extract.path" and f"resolves to {foreign}" in error.message
    with pytest.raises(PathNotAllowedError):
        kit.ingest("mirror")
    assert kit.version("mirror") is None


def test_an_unset_variable_is_judged_at_run_time_not_at_check(
    make_workspace: Any, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANDING_DIR", raising=False)
    kit = make_workspace()
    kit.write_source(SOURCE.format(path="${LANDING_DIR}/*.csv"), name="readings")
    assert roots_errors(kit) == []  # only the unset-variable warning: nothing to judge yet
    monkeypatch.setenv("LANDING_DIR", str(outside))
    (error,) = roots_errors(kit)  # set: judged like any path
    assert f"resolves to {outside}" in error.message


# -- ingestion judges again ----------------------------------------------------------------------------------------


def test_ingest_refuses_a_symlink_created_after_check_with_the_same_message(make_workspace: Any, outside: Path) -> None:
    kit = make_workspace(files={"landing/ok.csv": CSV})
    kit.write_source(SOURCE.format(path="landing/*.csv"), name="readings")
    assert roots_errors(kit) == []
    (kit.root / "landing" / "late.csv").symlink_to(outside / "secret.csv")
    (expected,) = roots_errors(kit)
    with pytest.raises(PathNotAllowedError) as raised:
        kit.ingest("readings")
    assert str(raised.value) == expected.format()
    assert kit.version("readings") is None  # nothing landed, not even the file inside the workspace


def test_ingest_refuses_a_variable_path_resolved_at_run_time(
    make_workspace: Any, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANDING_DIR", raising=False)
    kit = make_workspace()
    kit.write_source(SOURCE.format(path="${LANDING_DIR}/*.csv"), name="readings")
    monkeypatch.setenv("LANDING_DIR", str(outside))
    with pytest.raises(PathNotAllowedError, match=r"ingest\.allowed_roots"):
        kit.ingest("readings")
    assert kit.version("readings") is None


def test_ingest_refuses_a_sqlite_database_outside(
    make_workspace: Any, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = sqlite3.connect(outside / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    monkeypatch.setenv("SECRET_DB_URL", f"sqlite:///{outside / 'db.sqlite'}")
    kit = make_workspace()
    head = "description: A source of the test rig\nowner: data-team@example.com\nschedule: manual\n"
    kit.write_source(
        f"name: repairs\n{head}extract:\n  type: sql\n  url: ${{SECRET_DB_URL}}\n  table: t\nload: {{mode: replace}}\n",
        name="repairs",
    )
    with pytest.raises(PathNotAllowedError, match=r"repairs.yaml:7: extract.url: '\$\{SECRET_DB_URL\}' resolves"):
        kit.ingest("repairs")
    assert kit.version("repairs") is None


def test_the_cli_check_exits_1_and_names_the_setting(make_workspace: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from foundation.cli.main import app

    kit = make_workspace()
    monkeypatch.setenv("FOUNDATION_WORKSPACE", str(kit.root))  # the CLI exports it: restored after the test
    kit.write_source(SOURCE.format(path="/etc/passwd"), name="readings")
    result = CliRunner().invoke(app, ["--workspace", str(kit.root), "check"])
    assert result.exit_code == 1
    assert "readings.yaml:7: extract.path: '/etc/passwd' resolves to /etc/passwd" in result.output
    assert "ingest.allowed_roots" in result.output
