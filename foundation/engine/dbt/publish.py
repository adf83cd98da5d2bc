"""Publish what readers need after a dbt build: gold Delta snapshots and the KPI catalogue's metadata.

Readers (the KPI catalogue, the API) never open the warehouse file a run is writing: they read
`<lakehouse>/gold/<uc>/<model>` (a new Delta version per build, so a reader keeps its snapshot while the next one
is written) and `<lakehouse>/gold/_catalog/kpis.json` (replaced atomically).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from foundation.core.workspace import Workspace
from foundation.engine.dbt.manifest import load_manifest, model_nodes
from foundation.engine.dbt.paths import DbtPaths
from foundation.engine.dbt.warehouse import warehouse_path
from foundation.engine.lakehouse.object_store import open_delta, storage_options_of, write_delta, write_text
from foundation.engine.sql import quote_ident

GOLD = "gold"
CATALOG_DIR = "_catalog"
CATALOG_FILE = "kpis.json"
BATCH_ROWS = 122_880


@dataclass(frozen=True)
class PublishedTable:
    usecase: str
    model: str
    uri: str
    rows: int
    delta_version: int


def gold_uri(workspace: Workspace, usecase: str, model: str) -> str:
    return f"{workspace.lakehouse_root.rstrip('/')}/{GOLD}/{usecase}/{model}"


def catalog_path(lakehouse_root: str) -> Path:
    return Path(lakehouse_root) / GOLD / CATALOG_DIR / CATALOG_FILE


def catalog_uri(lakehouse_root: str) -> str:
    """Where the catalogue file is, in a folder or on object storage (s3://...)."""
    return f"{lakehouse_root.rstrip('/')}/{GOLD}/{CATALOG_DIR}/{CATALOG_FILE}"


def published_models(manifest: dict[str, Any], usecase: str) -> list[dict[str, Any]]:
    """The use case's models readers may need: every table model (marts, features, KPIs), not the staging views."""
    return [
        node
        for node in model_nodes(manifest).values()
        if node["fqn"][1:2] == [usecase] and node["config"].get("materialized") in ("table", "incremental")
    ]


def upstream_sources(manifest: dict[str, Any], unique_id: str) -> list[str]:
    """Every dbt source a node depends on, directly or through other models (their unique ids, sorted)."""
    nodes = manifest.get("nodes", {})
    seen: set[str] = set()
    found: set[str] = set()
    stack = [unique_id]
    while stack:
        current = stack.pop()
        for parent in nodes.get(current, {}).get("depends_on", {}).get("nodes", []):
            if parent in seen:
                continue
            seen.add(parent)
            if parent.startswith("source."):
                found.add(parent)
            else:
                stack.append(parent)
    return sorted(found)


def upstream_models(manifest: dict[str, Any], unique_id: str) -> list[str]:
    """Names of the models a node depends on, nearest first (breadth-first)."""
    nodes = manifest.get("nodes", {})
    order: list[str] = []
    frontier = [unique_id]
    seen = {unique_id}
    while frontier:
        following = []
        for current in frontier:
            for parent in nodes.get(current, {}).get("depends_on", {}).get("nodes", []):
                if parent in seen or not parent.startswith("model."):
                    continue
                seen.add(parent)
                order.append(nodes[parent]["name"])
                following.append(parent)
        frontier = following
    return order


def catalog_entries(manifest: dict[str, Any], workspace: Workspace) -> list[dict[str, Any]]:
    """Pure over the manifest: one entry per KPI model (its declaration, SQL, lineage back to the source YAML)."""
    sources = manifest.get("sources", {})
    entries = []
    for node in model_nodes(manifest).values():
        kpi = node.get("config", {}).get("meta", {}).get("kpi")
        if not kpi:
            continue
        lineage = []
        for source_id in upstream_sources(manifest, node["unique_id"]):
            source = sources.get(source_id, {})
            meta = source.get("config", {}).get("meta", {}) or source.get("meta", {})
            lineage.append(
                {
                    "source": f"{source.get('source_name')}/{source.get('name')}",
                    "yaml": meta.get("source_yaml"),
                    "owner": meta.get("owner"),
                    "bronze_table": f"bronze/{source.get('source_name')}/{source.get('name')}",
                }
            )
        entries.append(
            {
                **kpi,
                "dbt_model": node["name"],
                "dbt_unique_id": node["unique_id"],
                "relation": node.get("relation_name"),
                "gold_uri": gold_uri(workspace, kpi["usecase"], node["name"]),
                "sql": node.get("raw_code", ""),
                "upstream_models": upstream_models(manifest, node["unique_id"]),
                "lineage": lineage,
                "columns": list(node.get("columns", {})),
            }
        )
    return sorted(entries, key=lambda e: e["id"])


def publish_usecase(
    workspace: Workspace, paths: DbtPaths, usecase: str, model_kpis: list[dict[str, Any]]
) -> list[PublishedTable]:
    """Export the use case's table models to gold Delta tables and refresh the catalogue file. Hold the lock.

    `model_kpis`: the catalogue entries of the KPIs computed from model predictions (`mlops.kpis.catalog_entries`),
    which the caller (orchestration) passes in: the data engine does not know mlops."""
    manifest = load_manifest(paths)
    published: list[PublishedTable] = []
    con = duckdb.connect(str(warehouse_path(workspace)), read_only=True)
    try:
        existing = {
            (schema, name)
            for schema, name in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()
        }
        for node in published_models(manifest, usecase):
            schema, name = node["schema"], node.get("alias") or node["name"]
            if (schema, name) not in existing:
                continue  # not built yet (or skipped because something upstream failed)
            uri = gold_uri(workspace, usecase, node["name"])
            relation = f"{quote_ident(schema)}.{quote_ident(name)}"
            reader = con.sql(f"select * from {relation}").to_arrow_reader(BATCH_ROWS)
            write_delta(workspace, uri, reader, mode="overwrite", schema_mode="overwrite")
            rows = con.execute(f"select count(*) from {relation}").fetchall()[0][0]
            published.append(PublishedTable(usecase, node["name"], uri, rows, open_delta(workspace, uri).version()))
    finally:
        con.close()
    write_catalog(workspace, manifest, model_kpis)
    return published


def write_catalog(workspace: Workspace, manifest: dict[str, Any], model_kpis: list[dict[str, Any]]) -> str:
    """The dbt KPIs of `manifest`, and `model_kpis`: the catalogue entries of the KPIs declared with `predictions:`
    (their values are published by the predictions asset)."""
    uri = catalog_uri(workspace.lakehouse_root)
    kpis = sorted(catalog_entries(manifest, workspace) + model_kpis, key=lambda e: e["id"])
    catalogue = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "kpis": kpis}
    write_text(uri, json.dumps(catalogue, indent=2, default=str), storage_options_of(workspace))
    return uri
