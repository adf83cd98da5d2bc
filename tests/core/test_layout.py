"""Only foundation/core/workspace.py knows the folder layout of a workspace: no other module joins or globs its folder
names, so moving a folder is a change in one file."""

from __future__ import annotations

import ast
from pathlib import Path

from foundation.core import workspace

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("foundation", "kpi_catalog", "mlops", "serving")
LAYOUT = {
    workspace.USECASES_DIR,
    workspace.USECASE_FILE,
    workspace.SOURCES_DIR,
    workspace.KPIS_DIR,
    workspace.ML_DIR,
    workspace.SCHEMAS_DIR,
}


def layout_uses(path: Path) -> list[tuple[int, str]]:
    """(line, name) of each folder name of the layout joined with `/` or put in a glob pattern."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and side.value in LAYOUT:
                    found.append((node.lineno, side.value))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("glob", "rglob") and node.args:
            pattern = node.args[0]
            if isinstance(pattern, ast.Constant) and set(str(pattern.value).split("/")) & LAYOUT:
                found.append((node.lineno, str(pattern.value)))
    return found


def test_no_module_but_workspace_joins_the_layout_folders() -> None:
    offending = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative == "foundation/core/workspace.py" or "templates" in path.parts:
                continue
            offending += [(relative, line, name) for line, name in layout_uses(path)]
    assert offending == [], "ask foundation.core.workspace for the path (usecase_dirs, declaration_files, ...)"


def test_the_guard_finds_a_hard_coded_folder(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('def f(root):\n    return sorted((root / "usecases").glob("*/kpis/*.yaml"))\n')
    assert sorted(layout_uses(module)) == [(2, "*/kpis/*.yaml"), (2, "usecases")]
