"""Reading the manifest `dbt parse` wrote: the project's models and their documented columns."""

from __future__ import annotations

import json

from foundation.engine.dbt.paths import DbtPaths


def load_manifest(paths: DbtPaths) -> dict:
    return json.loads(paths.manifest.read_text(encoding="utf-8"))


def model_nodes(manifest: dict) -> dict[str, dict]:
    """Model name -> manifest node."""
    return {n["name"]: n for n in manifest.get("nodes", {}).values() if n.get("resource_type") == "model"}


def manifest_columns(manifest: dict) -> dict[str, set[str]]:
    """Model name -> documented column names, from a parsed manifest."""
    return {name: set(node.get("columns", {})) for name, node in model_nodes(manifest).items()}
