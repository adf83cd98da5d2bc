"""The framework's dbt macros ship with the package and reach every dbt project through macro-paths, never copied."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from foundation.core.workspace import Workspace
from foundation.engine.dbt.framework_macros import (
    FRAMEWORK_MACROS_ENTRY,
    FRAMEWORK_MACROS_LINK,
    framework_macro_errors,
    framework_macros_dir,
    link_framework_macros,
    macro_definitions,
)
from foundation.engine.dbt.paths import dbt_paths
from foundation.engine.dbt.project import DbtPrepareError, prepare_project
from foundation.scaffold.writer import init_workspace
from foundation.specs.errors import SpecValidationError

REPO = Path(__file__).resolve().parents[2]
# What generated models (source status, KPI models) and the repo's models call.
NEEDED = ("seconds_between", "add_days", "star_except", "star_replace", "string_type", "asof_left_join")
NEEDED += ("kpi_dimensions_star", "register_bronze_views", "unique_combination", "value_between")


def _defined(folder: Path) -> dict[str, Path]:
    return {name: p for p in folder.rglob("*.sql") for name, _ in macro_definitions(p.read_text(encoding="utf-8"))}


def test_the_package_holds_the_one_copy_of_the_framework_macros() -> None:
    shipped = _defined(framework_macros_dir())
    assert framework_macros_dir().parent == REPO / "foundation" / "engine" / "dbt"  # package data, inside the package
    assert set(NEEDED) <= set(shipped)
    # The repo's own project keeps only what is its own (the schema naming), so nothing can drift.
    assert set(_defined(REPO / "dbt_project" / "macros")) == {"generate_schema_name"}
    project = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))
    assert FRAMEWORK_MACROS_LINK in project["macro-paths"]


def test_an_init_platform_parses_with_the_installed_macros_and_holds_no_copy(tmp_path: Path) -> None:
    root = tmp_path / "platform"
    init_workspace(root)
    assert set(_defined(root / "dbt_project" / "macros")) == {"generate_schema_name"}
    paths = prepare_project(Workspace.open(root))  # a real `dbt parse`
    macros = json.loads(paths.manifest.read_text(encoding="utf-8"))["macros"]
    for name in ("seconds_between", "kpi_dimensions_star", "default__seconds_between"):
        node = macros[f"macro.platform.{name}"]  # in the root project's namespace, as if in its macros/
        assert Path(node["original_file_path"]).parts[0] == FRAMEWORK_MACROS_LINK, node["original_file_path"]
        assert (paths.project_dir / node["original_file_path"]).resolve().parent == framework_macros_dir()
    kpi = next(n for n in json.loads(paths.manifest.read_text())["nodes"].values() if n["name"].startswith("kpi_"))
    assert "macro.platform.kpi_dimensions_star" in kpi["depends_on"]["macros"]
    # Spark needs the bronze views registered in dbt's own session: the same hook as the repo's project.
    project = yaml.safe_load((root / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))
    repo_project = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))
    assert project["on-run-start"] == repo_project["on-run-start"] == ["{{ register_bronze_views() }}"]
    hooks = [n for n in json.loads(paths.manifest.read_text())["nodes"].values() if n["resource_type"] == "operation"]
    assert any("macro.platform.register_bronze_views" in n["depends_on"]["macros"] for n in hooks)


def test_copies_left_by_an_older_init_are_named_with_the_fix(tmp_path: Path) -> None:
    root = tmp_path / "platform"
    init_workspace(root)
    old_copy = root / "dbt_project" / "macros" / "foundation" / "cross_engine.sql"
    old_copy.parent.mkdir()
    old_copy.write_text((framework_macros_dir() / "cross_engine.sql").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(SpecValidationError) as caught:
        prepare_project(Workspace.open(root))
    first = caught.value.errors[0]
    assert first.path == old_copy and first.line is not None and first.field == "seconds_between"
    assert "foundation/engine/dbt/macros/cross_engine.sql" in first.message
    assert "delete this copy" in first.hint


def test_a_project_whose_macro_paths_miss_the_framework_is_told_the_line_to_write(tmp_path: Path) -> None:
    root = tmp_path / "platform"
    init_workspace(root)
    project_file = dbt_paths(Workspace.open(root)).project_dir / "dbt_project.yml"
    text = project_file.read_text(encoding="utf-8")
    project_file.write_text(text.replace(f'"macros", "{FRAMEWORK_MACROS_LINK}"', '"macros"'), encoding="utf-8")
    with pytest.raises(SpecValidationError) as caught:
        prepare_project(Workspace.open(root))
    (error,) = caught.value.errors
    assert error.path == project_file and error.field == "macro-paths"
    assert f'"{FRAMEWORK_MACROS_LINK}"' in error.hint


@pytest.mark.parametrize("entry", [FRAMEWORK_MACROS_LINK, FRAMEWORK_MACROS_ENTRY])  # the link, or the older variable
def test_framework_macro_errors_is_pure_and_quiet_on_a_good_project(entry: str) -> None:
    project = {"macro-paths": ["macros", entry]}
    mine = {Path("macros/mine.sql"): "{% macro my_helper(x) %}{{ x }}{% endmacro %}\n"}
    assert framework_macro_errors(Path("dbt_project.yml"), project, mine, {"seconds_between": "cross_engine.sql"}) == []
    clash = {Path("macros/t.sql"): "-- mine\n{%- test value_between(model) %}select 1{% endtest %}\n"}
    (error,) = framework_macro_errors(Path("dbt_project.yml"), project, clash, {"value_between": "tests/x.sql"})
    assert (error.line, error.field) == (2, "value_between")


def test_a_copy_of_the_macros_link_is_replaced_by_the_link_and_a_folder_of_ones_own_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "platform"
    init_workspace(root)
    link = dbt_paths(Workspace.open(root)).project_dir / FRAMEWORK_MACROS_LINK
    shutil.copytree(framework_macros_dir(), link)  # what copying a prepared project does (copytree follows links)
    link_framework_macros(link.parent)
    assert link.is_symlink() and link.resolve() == framework_macros_dir()
    link.unlink()
    (link / "mine.sql").parent.mkdir()
    (link / "mine.sql").write_text("{% macro mine() %}1{% endmacro %}\n", encoding="utf-8")
    with pytest.raises(DbtPrepareError, match="move your macros to macros/"):
        prepare_project(Workspace.open(root))
    assert (link / "mine.sql").is_file()  # never deleted
