"""dbt's documentation site of the workspace's data model: `dbt docs generate`, and the `dbt docs serve` command.

The site goes to its own target folder (`<state>/dbt/target/docs`), apart from the manifest `prepare_project`
parses and the builds' folder, so generating docs never changes what a run or dagster-dbt reads. Generating reads
the warehouse's catalogue (column types, row counts), so it holds the warehouse lock, after refreshing the bronze
views so the sources' columns are the current ones.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from foundation.core.workspace import Workspace
from foundation.engine.dbt.invocation import dbt_env, dbt_error_lines, dbt_executable
from foundation.engine.dbt.partial_parse import reuse_partial_parse
from foundation.engine.dbt.paths import DbtPaths
from foundation.engine.dbt.project import DbtPrepareError, prepare_project
from foundation.engine.dbt.warehouse import refresh_bronze_views, warehouse_lock

DOCS_DIR = "docs"  # under dbt's target folder


@dataclass(frozen=True)
class DocsSite:
    """A generated dbt docs site: its folder (index.html, manifest.json, catalog.json) and how many models and
    sources it documents."""

    target_dir: Path
    models: int
    sources: int

    @property
    def index(self) -> Path:
        return self.target_dir / "index.html"

    def to_dict(self) -> dict[str, object]:
        return {
            "target_dir": str(self.target_dir),
            "index": str(self.index),
            "models": self.models,
            "sources": self.sources,
        }


def docs_target(paths: DbtPaths) -> Path:
    return paths.target_dir / DOCS_DIR


def docs_env(paths: DbtPaths) -> dict[str, str]:
    return {**dbt_env(paths), "DBT_TARGET_PATH": str(docs_target(paths))}


def generate_docs(workspace: Workspace) -> DocsSite:
    """Prepare the project, refresh the bronze views, then `dbt docs generate`. Raises DbtPrepareError on failure
    (and SpecValidationError for invalid YAML, from `prepare_project`)."""
    paths = prepare_project(workspace)
    target = docs_target(paths)
    reuse_partial_parse(paths.target_dir, target)  # the parse prepare_project just did is not done again
    command = [dbt_executable(), "docs", "generate", "--project-dir", str(paths.project_dir), "--log-format", "json"]
    with warehouse_lock(workspace):
        refresh_bronze_views(workspace)
        result = subprocess.run(command, env=docs_env(paths), capture_output=True, text=True, cwd=paths.project_dir)
    if result.returncode != 0:
        raise DbtPrepareError(f"dbt docs generate failed in {paths.project_dir}:\n{dbt_error_lines(result.stdout)}")
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    models = [n for n in manifest.get("nodes", {}).values() if n.get("resource_type") == "model"]
    return DocsSite(target, models=len(models), sources=len(manifest.get("sources", {})))


def serve_command(paths: DbtPaths, host: str, port: int) -> list[str]:
    """`dbt docs serve` of the site `generate_docs` wrote (run it with `docs_env(paths)`; it runs until stopped)."""
    return [
        dbt_executable(),
        "docs",
        "serve",
        "--project-dir",
        str(paths.project_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--no-browser",
    ]
