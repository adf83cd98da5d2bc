"""Data Foundation: declare sources in YAML, land them in a Delta lakehouse through Dagster assets."""

__version__ = "0.1.0"
