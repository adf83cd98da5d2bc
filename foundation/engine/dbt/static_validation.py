"""Static validation of the dbt project against the workspace YAML, without running dbt (for `foundation check`,
and before `dbt parse` in `prepare_project`, whose own messages do not name the YAML to fix).

- every `source('<uc>', '<name>')` in a model must have a source YAML behind it (sources are generated from them);
- every KPI's model must exist and document the KPI's time and dimension columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from foundation.core.workspace import KPIS_DIR, SourceRef
from foundation.engine.dbt.paths import GENERATED_DIR, DbtPaths
from foundation.specs.errors import SpecError
from foundation.specs.kpi import KpiRef
from foundation.specs.kpi_columns import kpi_column_errors
from foundation.specs.yaml_source import SAFE_LOADER

SOURCE_CALL_RE = re.compile(r"""source\(\s*['"]([^'"]+)['"]\s*,\s*['"]([^'"]+)['"]\s*\)""")


def _hand_written(paths: DbtPaths, pattern: str) -> list[Path]:
    models = paths.project_dir / "models"
    return sorted(
        p
        for p in models.rglob(pattern)
        if GENERATED_DIR not in p.relative_to(models).parts[:-1]
        and not (len(p.relative_to(models).parts) > 2 and p.relative_to(models).parts[1] == KPIS_DIR)
    )


def source_references(paths: DbtPaths) -> list[tuple[Path, int, str, str]]:
    """(file, line, usecase, source) of every source() call in hand-written model SQL."""
    found = []
    for path in _hand_written(paths, "*.sql"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in SOURCE_CALL_RE.finditer(line):
                found.append((path, number, match.group(1), match.group(2)))
    return found


def check_source_references(paths: DbtPaths, sources: list[SourceRef]) -> list[SpecError]:
    """A dbt source with no source YAML behind it: the model would read a table nobody lands."""
    declared = {(s.usecase, s.name) for s in sources}
    errors = []
    for path, line, usecase, name in source_references(paths):
        if (usecase, name) in declared:
            continue
        same_uc = sorted(s.name for s in sources if s.usecase == usecase)
        hint = (
            f"declare it in usecases/{usecase}/sources/{name}.yaml, or use one of: {', '.join(same_uc)}"
            if same_uc
            else f"declare it in usecases/{usecase}/sources/{name}.yaml (no source is declared for {usecase!r})"
        )
        errors.append(
            SpecError(path, line, f"source('{usecase}', '{name}')", "dbt source with no source YAML behind it", hint)
        )
    return errors


def scan_model_columns(paths: DbtPaths) -> dict[str, set[str]]:
    """Model name -> documented columns, from the project's files (no dbt run): SQL file names and YAML docs."""
    models_dir = paths.project_dir / "models"
    models: dict[str, set[str]] = {p.stem: set() for p in models_dir.rglob("*.sql")}
    for path in list(models_dir.rglob("*.yml")) + list(models_dir.rglob("*.yaml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
        except yaml.YAMLError:
            continue  # dbt reports broken YAML itself
        for model in data.get("models", []) if isinstance(data, dict) else []:
            if isinstance(model, dict) and model.get("name") in models:
                columns = model.get("columns") or []
                models[model["name"]] |= {c["name"] for c in columns if isinstance(c, dict) and "name" in c}
    return models


def check_kpi_models(kpis: list[KpiRef], models: dict[str, set[str]]) -> list[SpecError]:
    """A KPI's model must exist; its time and dimension columns, and those its expression and filter name, must be
    documented columns of that model.

    Pure: `models` maps model names to their documented columns (from the manifest, or from scanning the project).
    """
    errors: list[SpecError] = []
    for kpi in kpis:
        spec = kpi.spec
        if spec.model is None:
            continue
        if spec.model not in models:
            known = ", ".join(sorted(m for m in models if not m.startswith("kpi_")))
            errors.append(
                SpecError(
                    kpi.path,
                    kpi.line_of.get("model"),
                    "model",
                    f"no dbt model named {spec.model!r}",
                    f"use one of: {known}",
                )
            )
            continue
        columns = models[spec.model]
        if not columns:
            continue  # an undocumented model: dbt itself reports unknown columns at build time
        wanted = [("time", spec.time)] + [("dimensions", d) for d in spec.dimensions]
        for key, column in wanted:
            if column and column not in columns:
                errors.append(
                    SpecError(
                        kpi.path,
                        kpi.line_of.get(key),
                        key,
                        f"model {spec.model!r} has no column {column!r}",
                        f"use one of its documented columns: {', '.join(sorted(columns))}",
                    )
                )
        errors.extend(kpi_column_errors(kpi, columns))  # the expression and filter name only its columns
    return errors


def check_dbt_project(paths: DbtPaths, sources: list[SourceRef], kpis: list[KpiRef]) -> list[SpecError]:
    if not paths.exists():
        return []
    return check_source_references(paths, sources) + check_kpi_models(kpis, scan_model_columns(paths))
