"""Dagster definitions of a workspace: one asset per source, one schedule per source schedule."""

from foundation.dagster_defs.definitions import build_definitions

__all__ = ["build_definitions"]
