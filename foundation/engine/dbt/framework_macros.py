"""The framework's own dbt macros: where they are installed, how dbt finds them, what stops a project using them.

The macros (cross-engine dispatch, `kpi_dimensions_star`, the bronze-view hook, generic tests) ship inside this
package (`foundation/engine/dbt/macros/`), never copied into a project. Every project lists `foundation_macros` in
its `macro-paths`: a link, written with the generated files, from the project folder to the installed folder, so a
plain `dbt build` finds them with no environment variable, and an upgraded framework is picked up by the link.
The macros thus join the root project's namespace, exactly as if they sat in its `macros/` folder.

Projects made before the link list `"{{ env_var('FOUNDATION_DBT_MACROS') }}"` instead: foundation still sets that
variable for every dbt it starts (our subprocesses, and dagster-dbt's, which inherit this process's environment).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import yaml

from foundation.engine.dbt.paths import DbtPaths
from foundation.specs.errors import SpecError

FRAMEWORK_MACROS_ENV = "FOUNDATION_DBT_MACROS"
FRAMEWORK_MACROS_LINK = "foundation_macros"  # what dbt_project.yml's macro-paths lists: the link in the project
FRAMEWORK_MACROS_ENTRY = "{{ env_var('" + FRAMEWORK_MACROS_ENV + "') }}"  # what projects made before the link list
MACRO_DEF_RE = re.compile(r"{%-?\s*(?:macro|test)\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def framework_macros_dir() -> Path:
    """The framework's dbt macros, as installed with this package (a checkout's folder, or site-packages')."""
    return Path(__file__).resolve().parent / "macros"


def expose_framework_macros() -> Path:
    """Point FOUNDATION_DBT_MACROS at the installed macros, for every dbt this process starts from now on."""
    folder = framework_macros_dir()
    os.environ[FRAMEWORK_MACROS_ENV] = str(folder)
    return folder


def link_framework_macros(project_dir: Path) -> Path:
    """Make `<project>/foundation_macros` a link to the installed framework's macros; returns the link.

    A folder found there instead is a copy of the link's content (a `shutil.copytree` of the project follows links):
    it is replaced when it holds nothing but framework macro files, and refused otherwise, since it is not ours.
    """
    link = project_dir / FRAMEWORK_MACROS_LINK
    target = framework_macros_dir()
    if link.is_symlink():
        if link.resolve() == target:
            return link
        link.unlink()
    elif link.is_dir():
        copied = {p.relative_to(link) for p in link.rglob("*") if p.is_file()}
        if not copied <= {p.relative_to(target) for p in target.rglob("*") if p.is_file()}:
            raise FileExistsError(
                f"{link} is a folder with files of its own, but foundation keeps a link to its dbt macros there: "
                "move your macros to macros/, then delete the folder"
            )
        shutil.rmtree(link)
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=True)
    tmp.replace(link)  # atomic: a dbt starting meanwhile sees the old link or the new one
    return link


def lists_framework_macros(entry: object) -> bool:
    """A macro-paths entry that reaches the framework's macros (the link, or the older environment variable)."""
    return str(entry).rstrip("/") == FRAMEWORK_MACROS_LINK or FRAMEWORK_MACROS_ENV in str(entry)


def macro_definitions(text: str) -> list[tuple[str, int]]:
    """(name, line) of every `{% macro name(` / `{% test name(` in a macro file's text."""
    return [(m.group(1), text.count("\n", 0, m.start()) + 1) for m in MACRO_DEF_RE.finditer(text)]


def framework_macro_errors(
    project_file: Path, project: dict, project_macros: dict[Path, str], framework: dict[str, str]
) -> list[SpecError]:
    """What stops a project from using the framework's macros, before dbt says it less clearly.

    Pure: `project` is the parsed dbt_project.yml, `project_macros` the text of the project's own macro files,
    `framework` maps each framework macro name to its file (relative to foundation/engine/dbt/macros/).
    """
    errors: list[SpecError] = []
    macro_paths = project.get("macro-paths") or ["macros"]
    if not any(lists_framework_macros(entry) for entry in macro_paths):
        errors.append(
            SpecError(
                project_file,
                None,
                "macro-paths",
                "does not list the framework's dbt macros (seconds_between, kpi_dimensions_star... that the "
                "generated models call)",
                f'write macro-paths: ["macros", "{FRAMEWORK_MACROS_LINK}"] (a link foundation writes to the installed '
                "macros)",
            )
        )
    for path, text in sorted(project_macros.items()):
        for name, line in macro_definitions(text):
            if name in framework:
                errors.append(
                    SpecError(
                        path,
                        line,
                        name,
                        f"is also defined by the framework (foundation/engine/dbt/macros/{framework[name]}), "
                        "and dbt refuses "
                        "two macros of one name",
                        "delete this copy (a platform made by an older `foundation init` has them under "
                        "dbt_project/macros/foundation/), or rename your macro",
                    )
                )
    return errors


def check_framework_macros(paths: DbtPaths) -> list[SpecError]:
    """`framework_macro_errors` on the files of the project at `paths` (reads them; no dbt)."""
    project_file = paths.project_dir / "dbt_project.yml"
    try:
        project = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []  # dbt reports an unreadable project itself, with its own position
    own_macros: dict[Path, str] = {}
    for entry in project.get("macro-paths") or ["macros"]:
        folder = paths.project_dir / str(entry)
        if "{{" in str(entry) or lists_framework_macros(entry) or not folder.is_dir():
            continue
        own_macros |= {p: p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.sql"))}
    root = framework_macros_dir()
    framework = {
        name: p.relative_to(root).as_posix()
        for p in sorted(root.rglob("*.sql"))
        for name, _ in macro_definitions(p.read_text(encoding="utf-8"))
    }
    return framework_macro_errors(project_file, project, own_macros, framework)
