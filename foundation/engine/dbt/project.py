"""The workspace's dbt project, made ready to run: checked, its derived files generated, and a fresh manifest.

`prepare_project` validates the project against the workspace YAML before dbt sees it (dbt's own messages for a
missing source or model do not name the YAML to fix), writes the generated files (foundation.engine.dbt.generate),
and runs `dbt parse` only when an input changed (foundation.engine.dbt.fingerprint).
"""

from __future__ import annotations

from foundation.core.workspace import Workspace, load_kpis
from foundation.engine.dbt.fingerprint import inputs_fingerprint, manifest_is_fresh
from foundation.engine.dbt.framework_macros import check_framework_macros, expose_framework_macros
from foundation.engine.dbt.generate import generate_files
from foundation.engine.dbt.invocation import dbt_error_lines, dbt_parse
from foundation.engine.dbt.manifest import load_manifest, manifest_columns
from foundation.engine.dbt.paths import DbtPaths, dbt_paths
from foundation.engine.dbt.static_validation import check_dbt_project, check_kpi_models
from foundation.specs.errors import SpecValidationError


class DbtPrepareError(RuntimeError):
    """The dbt project does not parse; the message carries dbt's own explanation."""


def prepare_project(workspace: Workspace, force: bool = False) -> DbtPaths:
    """Generate the derived files, then `dbt parse` when the manifest is missing or stale. Returns the paths.

    Raises SpecValidationError for invalid KPI YAML and DbtPrepareError when dbt cannot parse the project.
    """
    paths = dbt_paths(workspace)
    if not paths.exists():
        raise DbtPrepareError(
            f"no dbt project at {paths.project_dir} (dbt.project_dir in foundation.yaml): "
            "create it (see docs/data-model.md) or fix the setting"
        )
    scan = load_kpis(workspace.root)
    if not scan.ok:
        raise SpecValidationError([e for e in scan.errors if e.severity == "error"])
    errors = check_dbt_project(paths, workspace.sources(), scan.kpis) + check_framework_macros(paths)
    if errors:
        raise SpecValidationError(errors)
    expose_framework_macros()  # for the parse below, and for every dbt this process starts later (dagster-dbt's)
    try:
        generate_files(workspace, paths, scan.kpis)
    except FileExistsError as exc:  # a folder of the user's where the macros link goes
        raise DbtPrepareError(str(exc)) from exc
    fingerprint = inputs_fingerprint(paths)
    if manifest_is_fresh(paths, fingerprint) and not force:
        return paths
    result = dbt_parse(paths)
    if result.returncode != 0:
        raise DbtPrepareError(f"dbt parse failed in {paths.project_dir}:\n{dbt_error_lines(result.stdout)}")
    errors = check_kpi_models(scan.kpis, manifest_columns(load_manifest(paths)))
    if errors:
        raise SpecValidationError(errors)
    paths.fingerprint_file.write_text(fingerprint, encoding="utf-8")
    return paths
