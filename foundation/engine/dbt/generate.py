"""Writing what is derived from the workspace YAML into the dbt project (generated, never hand-written; git-ignored).

- the profile (`foundation.engine.dbt.profiles_yml`), in dbt's state folder for the dbt foundation starts, and as
  `<project>/profiles.yml`, where a plain `dbt` run from the project folder finds it (unless a profiles.yml of the
  user's own is there: it is never overwritten);
- `<project>/foundation_macros`: the link to the framework's macros (`foundation.engine.dbt.framework_macros`);
- `models/<uc>/_generated/`: the dbt sources and the source status model (`foundation.engine.dbt.sources`);
- `models/<uc>/kpis/`: one `kpi_<id>` model per KPI declaration, with its contract and catalogue metadata
  (`foundation.engine.dbt.kpi_models`).
A file is rewritten only when its text changed, and a generated file whose YAML is gone is removed.
"""

from __future__ import annotations

from pathlib import Path

from foundation.core.workspace import KPIS_DIR, SourceRef, Workspace
from foundation.engine.dbt.framework_macros import link_framework_macros
from foundation.engine.dbt.kpi_models import contract_types, kpi_model_sql, kpi_properties
from foundation.engine.dbt.paths import GENERATED_DIR, DbtPaths
from foundation.engine.dbt.profiles_yml import is_generated_profile, workspace_profile_yaml
from foundation.engine.dbt.sources import source_status_properties, source_status_sql, sources_yaml
from foundation.engine.dbt.spark import SPARK_TARGET
from foundation.specs.kpi import KpiRef


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` atomically unless the file already holds it; returns whether it wrote."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def remove_stale(folder: Path, keep: set[Path]) -> None:
    """Delete the files of a generated folder that are not in `keep`."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and path not in keep:
            path.unlink()


def write_profiles(workspace: Workspace, paths: DbtPaths) -> list[Path]:
    """The profile in dbt's state folder, and in the project folder for plain dbt; returns the files written."""
    text = workspace_profile_yaml(workspace)
    written = [paths.profiles_dir / "profiles.yml"]
    write_if_changed(written[0], text)
    in_project = paths.project_dir / "profiles.yml"
    if not in_project.exists() or is_generated_profile(in_project.read_text(encoding="utf-8")):
        write_if_changed(in_project, text)
        written.append(in_project)
    return written


def write_source_models(workspace: Workspace, folder: Path, usecase: str, sources: list[SourceRef]) -> set[Path]:
    """A use case's `_generated/` folder: its dbt sources and source status model. Returns the files kept."""
    keep: set[Path] = set()
    if sources:
        uc_spec = workspace.scan.usecases.get(usecase)
        description = uc_spec.description if uc_spec else None
        files = {
            folder / "sources.yml": sources_yaml(usecase, sources, workspace.root, description),
            folder / f"{usecase}_source_status.sql": source_status_sql(usecase, sources),
            folder / "source_status.yml": source_status_properties(usecase),
        }
        for path, text in files.items():
            write_if_changed(path, text)
        keep = set(files)
    remove_stale(folder, keep)
    return keep


def write_kpi_models(workspace: Workspace, folder: Path, kpis: list[KpiRef]) -> set[Path]:
    """A use case's `kpis/` folder: one model per KPI and their properties YAML. Returns the files kept."""
    types = contract_types("spark" if workspace.settings.dbt.target == SPARK_TARGET else "duckdb")
    keep: set[Path] = set()
    listed = []
    for kpi in kpis:
        relative = kpi.path.relative_to(workspace.root)
        path = folder / f"{kpi.spec.model_name}.sql"
        write_if_changed(path, kpi_model_sql(kpi, relative))
        keep.add(path)
        listed.append((kpi, str(relative)))
    if listed:
        path = folder / "_kpis.yml"
        write_if_changed(path, kpi_properties(listed, types))
        keep.add(path)
    remove_stale(folder, keep)
    return keep


def generate_files(workspace: Workspace, paths: DbtPaths, kpis: list[KpiRef]) -> list[Path]:
    """Write the profile and every generated model file; remove generated files whose YAML is gone.

    Returns the files the project now holds from the YAML (written or already up to date), the profiles first.
    """
    written = write_profiles(workspace, paths)
    written.append(link_framework_macros(paths.project_dir))
    models = paths.project_dir / "models"
    by_usecase: dict[str, list[SourceRef]] = {}
    for source in workspace.sources():
        by_usecase.setdefault(source.usecase, []).append(source)
    kpis_by_usecase: dict[str, list[KpiRef]] = {}
    for kpi in kpis:
        if kpi.spec.predictions is None:  # model KPIs are published by the predictions asset, not built by dbt
            kpis_by_usecase.setdefault(kpi.usecase, []).append(kpi)
    for usecase in sorted(set(by_usecase) | set(kpis_by_usecase)):
        folder = models / usecase
        kept = write_source_models(workspace, folder / GENERATED_DIR, usecase, by_usecase.get(usecase, []))
        kept |= write_kpi_models(workspace, folder / KPIS_DIR, kpis_by_usecase.get(usecase, []))
        written.extend(sorted(kept))
    # Use cases that lost all their sources and KPIs: their generated folders go too.
    for folder in models.glob(f"*/{GENERATED_DIR}"):
        if folder.parent.name not in by_usecase:
            remove_stale(folder, set())
    return written
