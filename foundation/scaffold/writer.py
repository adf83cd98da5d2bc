"""Writing scaffolds to disk: the only I/O of `foundation.scaffold`. A file that exists is never overwritten."""

from __future__ import annotations

import importlib.metadata
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation.core.workspace import USECASE_FILE, USECASES_DIR
from foundation.scaffold.render import (
    ScaffoldError,
    UsecaseAnswers,
    project_name_of,
    usecase_files,
    validate_answers,
    workspace_files,
)
from foundation.specs.yaml_source import load_yaml

DISTRIBUTION = "data-foundation"


@dataclass
class WriteResult:
    root: Path
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # existed already: left as the user had it


def write_files(root: Path, files: dict[str, str | bytes]) -> WriteResult:
    result = WriteResult(root)
    for relative, content in files.items():
        path = root / relative
        if path.exists():
            result.kept.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        result.written.append(path)
    return result


def framework_requirement() -> str:
    """The new platform's dependency on the framework, by name and version (`data-foundation~=0.1.0`: this release
    and its patches), so that the platform's own CI installs it from the index like any other package."""
    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # a checkout on the path, not installed
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        version = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    return f"{DISTRIBUTION}~={version}"


def init_workspace(folder: Path, force: bool = False, framework_path: Path | None = None) -> WriteResult:
    """Write a new platform workspace into `folder`. Refuses a non-empty folder unless `force`; even then, every
    file that exists is kept as it is (reported in `kept`). `framework_path`: a Data Foundation checkout the
    platform takes the framework from (`[tool.uv.sources]`, editable), to develop both side by side."""
    folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} is a file: give a folder for the new platform")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise ScaffoldError(
            f"{folder} is not empty: choose a new folder, or pass --force to add the platform files around what is "
            "there (existing files are never overwritten)"
        )
    if framework_path is not None and not (framework_path / "pyproject.toml").is_file():
        raise ScaffoldError(f"{framework_path} is not a Data Foundation checkout (no pyproject.toml)")
    path = str(framework_path.resolve()) if framework_path is not None else None
    return write_files(folder, workspace_files(project_name_of(folder.name), framework_requirement(), path))


def existing_usecases(root: Path) -> list[str]:
    base = root / USECASES_DIR
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def create_usecase(root: Path, answers: UsecaseAnswers) -> WriteResult:
    """Write a use-case skeleton into the workspace at `root`; a duplicate name (folder or dbt models) is refused."""
    answers = validate_answers(answers)
    if answers.name in existing_usecases(root):
        raise ScaffoldError(
            f"a use case named {answers.name!r} already exists ({USECASES_DIR}/{answers.name}/): choose another name"
        )
    files = usecase_files(answers)
    taken = [relative for relative in files if (root / relative).exists()]
    if taken:
        raise ScaffoldError(
            f"{', '.join(taken)} already exist(s): the name {answers.name!r} clashes with existing files; "
            "choose another name or move them"
        )
    return write_files(root, files)


def target_usecase(root: Path, target: str) -> tuple[str, str]:
    """`USECASE/NAME` -> (use case, name); a bare NAME when the workspace has exactly one use case."""
    usecases = existing_usecases(root)
    usecase, _, name = target.rpartition("/")
    if not usecase:
        if len(usecases) != 1:
            known = ", ".join(usecases) or "none (create one with `foundation usecase new NAME`)"
            raise ScaffoldError(f"say which use case: USECASE/{target} (use cases: {known})")
        usecase = usecases[0]
    if usecase not in usecases:
        known = ", ".join(usecases) or "none (create one with `foundation usecase new NAME`)"
        raise ScaffoldError(f"no use case named {usecase!r}; known: {known}")
    return usecase, name


def usecase_owner(root: Path, usecase: str) -> str | None:
    """The owner e-mail of the use case's usecase.yaml (the default owner of what is added to it)."""
    doc, _ = load_yaml(root / USECASES_DIR / usecase / USECASE_FILE)
    data: Any = doc.data if doc is not None else None
    owner = data.get("owner") if isinstance(data, dict) else None
    return owner if isinstance(owner, str) else None


def create_spec_file(root: Path, files: dict[str, str]) -> WriteResult:
    """Write one new YAML (`sources new`, `kpi new`); a file that exists is refused, never overwritten."""
    taken = [relative for relative in files if (root / relative).exists()]
    if taken:
        raise ScaffoldError(f"{', '.join(taken)} already exists: choose another name, or edit that file")
    return write_files(root, files)
