"""A copy of this repository's platform (settings, use cases, dbt project) in a temporary folder, with the demo's
landing files: what the dbt tests build and query."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def copy_platform(target: Path) -> Path:
    """foundation.yaml, usecases/ and dbt_project/ (without generated files or dbt state) under `target`."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "foundation.yaml", target / "foundation.yaml")
    shutil.copytree(REPO / "usecases", target / "usecases")
    shutil.copytree(
        REPO / "dbt_project",
        target / "dbt_project",
        ignore=shutil.ignore_patterns(
            "_generated", "kpis", "target", "logs", "dbt_packages", "profiles.yml", "foundation_macros"
        ),
    )
    return target
