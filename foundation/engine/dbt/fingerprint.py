"""Whether the manifest is stale: a hash of every input of `dbt parse`, kept beside the manifest it produced."""

from __future__ import annotations

import hashlib

from foundation.engine.dbt.framework_macros import framework_macros_dir
from foundation.engine.dbt.paths import DbtPaths

PARSED_FOLDERS = ("models", "macros", "tests", "snapshots", "seeds", "analyses")


def inputs_fingerprint(paths: DbtPaths) -> str:
    """A hash of every file dbt parses (project, models, macros, profile, the framework's macros): the manifest is
    stale when it changes (an upgraded framework included)."""
    digest = hashlib.sha256()
    files = [paths.project_dir / "dbt_project.yml", paths.profiles_dir / "profiles.yml"]
    for sub in PARSED_FOLDERS:
        folder = paths.project_dir / sub
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in files:
        if path.exists():
            digest.update(str(path.relative_to(paths.project_dir.parent)).encode())
            digest.update(path.read_bytes())
    framework = framework_macros_dir()
    for path in sorted(framework.rglob("*.sql")):
        digest.update(f"<framework>/{path.relative_to(framework).as_posix()}".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def manifest_is_fresh(paths: DbtPaths, fingerprint: str) -> bool:
    """The manifest exists and was parsed from inputs with this fingerprint."""
    return (
        paths.manifest.exists()
        and paths.fingerprint_file.exists()
        and paths.fingerprint_file.read_text(encoding="utf-8") == fingerprint
    )
