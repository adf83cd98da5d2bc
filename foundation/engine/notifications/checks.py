"""`foundation check` on what the notifications block names in the workspace: a routing rule's use cases must exist
(a misspelt one would silently route nothing). Types, channels and secrets are checked with the settings."""

from __future__ import annotations

from foundation.core.settings import SETTINGS_FILE
from foundation.core.settings_profiles import read_document
from foundation.core.workspace import Workspace
from foundation.specs.errors import SpecError


def notification_errors(workspace: Workspace) -> list[SpecError]:
    rules = workspace.settings.notifications.rules
    known = set(workspace.scan.usecases)
    if not rules or not known:
        return []
    doc, _ = read_document(workspace.root)
    errors = []
    for i, rule in enumerate(rules):
        for usecase in rule.usecases:
            if usecase not in known:
                loc = ("notifications", "rules", i, "usecases")
                errors.append(
                    SpecError(
                        workspace.root / SETTINGS_FILE,
                        doc.line_of(loc) if doc else None,
                        ".".join(map(str, loc)),
                        f"no use case {usecase!r}: this rule would route nothing for it",
                        f"use one of: {', '.join(sorted(known))}",
                    )
                )
    return errors
