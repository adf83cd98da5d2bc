"""Entry point for `dagster dev -m foundation.dagster_defs.workspace_defs` (the workspace from
$FOUNDATION_WORKSPACE or the current folder); `foundation ui` uses it."""

from foundation.dagster_defs.definitions import build_definitions

defs = build_definitions()
