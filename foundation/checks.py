"""`foundation check`: every YAML error of the workspace, plus warnings that need the file system."""

from __future__ import annotations

import glob
import os

from foundation.secrets import references
from foundation.specs.errors import SpecError
from foundation.specs.source import DeltaExtract
from foundation.specs.yaml_source import load_yaml
from foundation.workspace import Workspace


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
        line = doc.line_of(("extract", "path")) if doc else None
        if isinstance(extract, DeltaExtract):
            continue
        for pattern in extract.paths:
            absolute = pattern if os.path.isabs(pattern) else str(workspace.root / pattern)
            if not glob.glob(absolute, recursive=True):
                errors.append(
                    SpecError(
                        source.path,
                        line,
                        "extract.path",
                        f"{pattern!r} matches no file yet",
                        "land the files, or fix the path (relative to the workspace root)",
                        severity="warning",
                    )
                )
    return errors
