"""Dagster definitions of a workspace: one asset per source, one schedule per source schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from foundation.dagster_defs.definitions import build_definitions

__all__ = ["build_definitions"]


def __getattr__(name: str) -> Any:
    """`build_definitions` on first use: importing a module of this package (`ingest_run`, which `foundation ingest`
    runs before it needs Dagster) must not import Dagster (0.5 s) through this file."""
    if name == "build_definitions":
        from foundation.dagster_defs.definitions import build_definitions  # lazy: dagster, see above

        return build_definitions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
