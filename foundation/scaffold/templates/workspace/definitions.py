"""Dagster entry point of this platform: `dagster dev -f definitions.py` (or `foundation ui`)."""

from pathlib import Path

from foundation.dagster_defs import build_definitions

defs = build_definitions(Path(__file__).parent)
