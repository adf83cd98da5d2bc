"""`foundation check` warnings for the `TODO` markers a skeleton leaves: file:line and what to fill in."""

from __future__ import annotations

import re
from pathlib import Path

from foundation.core.workspace import USECASES_DIR, Workspace
from foundation.engine.dbt.paths import dbt_paths
from foundation.specs.errors import SpecError

TODO_RE = re.compile(r"\bTODO\b:?\s*(.*)")
SUFFIXES = (".yaml", ".yml", ".sql")


def todo_lines(text: str) -> list[tuple[int, str]]:
    """Pure: (line number, what the TODO asks) of every TODO marker in a file's text."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = TODO_RE.search(line)
        if match:
            found.append((number, match.group(1).strip().rstrip('"').strip() or "fill this in"))
    return found


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in SUFFIXES) if folder.is_dir() else []


def todo_warnings(workspace: Workspace) -> list[SpecError]:
    models = dbt_paths(workspace).project_dir / "models"
    warnings = []
    for usecase in sorted(workspace.scan.usecases):
        for path in _files(workspace.root / USECASES_DIR / usecase) + _files(models / usecase):
            if "_generated" in path.parts:
                continue
            for line, ask in todo_lines(path.read_text(encoding="utf-8", errors="replace")):
                warnings.append(SpecError(path, line, "TODO", ask, severity="warning"))
    return warnings
