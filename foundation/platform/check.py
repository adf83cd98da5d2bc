"""`foundation check`: every YAML error of the workspace, plus warnings that need the file system."""

from __future__ import annotations

import os

from foundation.core.workspace import Workspace, load_kpis, load_model_specs
from foundation.engine.connectors.files import match_pattern
from foundation.engine.connectors.staging import is_staged
from foundation.engine.dbt.paths import dbt_paths
from foundation.engine.dbt.static_validation import check_dbt_project
from foundation.engine.notifications.checks import notification_errors
from foundation.platform.portfolio.report import qualification_warnings
from foundation.platform.todos import todo_warnings
from foundation.specs.errors import SpecError
from foundation.specs.roots import path_errors
from foundation.specs.secrets import MissingSecretError, references
from foundation.specs.source import DeltaExtract
from foundation.specs.yaml_source import load_yaml
from mlops.feature_table_checks import check_model_kpis, check_model_specs


def check_workspace(workspace: Workspace) -> list[SpecError]:
    errors = list(workspace.scan.errors)
    for source in workspace.scan.sources:
        extract = source.spec.extract
        doc, _ = load_yaml(source.path)
        for variable in sorted(references(doc.data if doc else None)):
            if variable not in os.environ:
                errors.append(
                    SpecError(
                        source.path,
                        None,
                        "",
                        f"environment variable {variable} is not set",
                        f"export {variable} before ingesting this source",
                        severity="warning",
                    )
                )
        errors.extend(
            path_errors(workspace.root, workspace.allowed_roots, source.path, extract, doc.line_of if doc else None)
        )
        line = doc.line_of(("extract", "path")) if doc else None
        if isinstance(extract, DeltaExtract) or is_staged(extract):  # no files to look for (rest_api, sql, html)
            continue
        for declared in extract.paths:
            try:
                _, matched = match_pattern(workspace.root, declared)
            except MissingSecretError:
                continue  # already reported as an unset variable
            if not matched:
                errors.append(
                    SpecError(
                        source.path,
                        line,
                        "extract.path",
                        f"{declared!r} matches no file yet",
                        "land the files, or fix the path (relative to the workspace root)",
                        severity="warning",
                    )
                )
    errors.extend(_dbt_and_kpi_errors(workspace))
    errors.extend(notification_errors(workspace))  # rules naming use cases that do not exist
    errors.extend(check_model_specs(workspace))  # usecases/<uc>/ml/*.yaml
    # incomplete qualification sheets; what a skeleton still asks to fill in
    errors.extend(qualification_warnings(workspace) + todo_warnings(workspace))
    return errors


def _dbt_and_kpi_errors(workspace: Workspace) -> list[SpecError]:
    """KPI YAML errors, dbt sources with no source YAML behind them, KPIs on unknown models or columns."""
    kpis = load_kpis(workspace.root)
    return (
        kpis.errors
        + check_dbt_project(dbt_paths(workspace), list(workspace.scan.sources), kpis.kpis)
        + check_model_kpis(kpis.kpis, load_model_specs(workspace.root).models)
    )
