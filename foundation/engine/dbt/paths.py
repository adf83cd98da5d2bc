"""Where a workspace's dbt project and dbt's own state live.

The project folder (`dbt.project_dir` in foundation.yaml) holds the models, with the generated ones under
`models/<uc>/_generated/` and `models/<uc>/kpis/` (KPIS_DIR, the folder name the KPI YAML uses too). dbt's own
files (profile, target, logs) live in the workspace state folder, so several workspaces can share one project
folder without sharing state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from foundation.core.workspace import Workspace

GENERATED_DIR = "_generated"  # models/<uc>/_generated/: the sources and source status, from the source YAML


@dataclass(frozen=True)
class DbtPaths:
    project_dir: Path
    state_dir: Path  # <workspace state>/dbt: profile, target, logs

    @property
    def profiles_dir(self) -> Path:
        return self.state_dir

    @property
    def target_dir(self) -> Path:
        return self.state_dir / "target"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def manifest(self) -> Path:
        return self.target_dir / "manifest.json"

    @property
    def fingerprint_file(self) -> Path:
        return self.target_dir / "foundation_inputs.sha256"

    def exists(self) -> bool:
        return (self.project_dir / "dbt_project.yml").is_file()


def dbt_paths(workspace: Workspace) -> DbtPaths:
    return DbtPaths(Path(workspace.resolve(workspace.settings.dbt.project_dir)), workspace.state_dir / "dbt")
