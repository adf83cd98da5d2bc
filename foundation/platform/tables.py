"""Every table of the lakehouse, by layer, for tools: `foundation sql`, `foundation tables` and `read_table()`.

The layers are schemas named after where each Delta table lives under the lakehouse root:

    bronze.<uc>__<source>                 bronze/<uc>/<source>             landed rows
    quarantine.<uc>__<source>             bronze/<uc>/<source>__quarantine the rows refused, with their reason
                                          (also bronze.<uc>__<source>__quarantine, its earlier name)
    gold.<uc>__<model>                    gold/<uc>/<model>                every dbt table a build published
    marts|features|kpis|….<uc>__<model>   the same snapshots, by the dbt folder (layer) of the model
    ml.<uc>__<model>__<what>              ml/<uc>/<model>/<what>           predictions, drift, realised_performance,
                                                                           api_predictions (the prediction log)
    ml.<uc>__<model>__training_set        the feature table's snapshot the last training read, rows fit for training
    ml.promotions                         ml/_registry/promotions          the champion's promotion history
    quality.check_results                 quality/check_results            every quality rule's results

Each table is read at its current Delta version through DuckDB's Parquet reader (no extension to download,
foundation.engine.lakehouse.catalog). dbt's staging views are not published (they are renames of bronze inside a
build), so they have no schema here.

    from foundation.platform.tables import read_table
    features = read_table("gold.fleet_maintenance__features_truck_day").to_pandas()
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from foundation.core.workspace import Workspace, load_model_specs
from foundation.engine.dbt.manifest import model_nodes
from foundation.engine.dbt.paths import dbt_paths
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import arrow_filesystem, filesystem_path, is_remote, storage_options_of
from foundation.engine.sql import quote_ident

QUARANTINE_SUFFIX = "__quarantine"
SKIPPED = {("gold", "_catalog")}  # folders under the lakehouse that hold no table (the KPI catalogue's JSON)
TRAINING_REPORT = "training_report.json"  # <state>/ml/<uc>__<model>/ (mlops.pipeline.report_path)


@dataclass(frozen=True)
class LakehouseTable:
    """One queryable table: `schema.name`, the Delta table it reads and, for a derived table, its row filter."""

    schema: str
    name: str
    uri: str
    version: int | None = None  # a pinned snapshot (the training set's); None: the current one
    where: str | None = None
    listed: bool = True  # False: an earlier name kept queryable, not listed by `foundation tables`

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def select_sql(self, con: duckdb.DuckDBPyConnection, storage_options: dict[str, str] | None) -> str:
        """A SELECT over the table's snapshot, usable in a view or read at once."""
        empty = f"_empty_{self.schema}__{self.name}"
        relation = delta_relation_sql(con, self.uri, self.version, storage_options, empty_name=empty)
        return f"SELECT * FROM {relation}" + (f" WHERE ({self.where})" if self.where else "")


def delta_folders(root: str, storage_options: dict[str, str] | None = None) -> list[tuple[str, ...]]:
    """The path parts (relative to `root`) of every Delta table under it, sorted; nested tables are not looked for."""
    if is_remote(root):
        filesystem = arrow_filesystem(root, storage_options)
        base = filesystem_path(root).rstrip("/")
        infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        logs = {i.path[len(base) + 1 :].rsplit("/_delta_log", 1)[0] for i in infos if "/_delta_log/" in i.path}
        return sorted(tuple(log.split("/")) for log in logs if "_delta_log" not in log)
    found: list[tuple[str, ...]] = []
    for folder, subfolders, _ in os.walk(root):
        if "_delta_log" in subfolders:
            found.append(Path(folder).relative_to(root).parts)
            subfolders.clear()  # a table's own folders (partitions, the log) hold no other table
        subfolders.sort()
    return sorted(found)


def classify(parts: tuple[str, ...]) -> tuple[str, str]:
    """Pure: (schema, name) of a Delta table from its path parts under the lakehouse root."""
    layer, rest = parts[0], list(parts[1:])
    if layer == "bronze" and rest and rest[-1].endswith(QUARANTINE_SUFFIX):
        rest[-1] = rest[-1][: -len(QUARANTINE_SUFFIX)]
        return "quarantine", "__".join(rest)
    if layer == "ml" and rest[:1] == ["_registry"]:
        return "ml", "__".join(rest[1:])
    return layer, "__".join(rest) or layer


def dbt_layers(workspace: Workspace) -> dict[str, str]:
    """dbt model name -> its folder under the use case (`marts`, `features`, `kpis`…), from the last parsed manifest."""
    manifest = dbt_paths(workspace).manifest
    if not manifest.exists():
        return {}
    nodes = model_nodes(json.loads(manifest.read_text(encoding="utf-8")))
    return {name: node["fqn"][2] for name, node in nodes.items() if len(node.get("fqn", [])) > 3}


def training_sets(workspace: Workspace) -> list[LakehouseTable]:
    """The rows the last training of each model read: its feature table at the version it read, `row_filter` kept."""
    found = []
    specs = {(ref.usecase, ref.spec.name): ref.spec for ref in load_model_specs(workspace.root).models}
    for report_file in sorted(workspace.ml_state_dir.glob(f"*/{TRAINING_REPORT}")):
        report = json.loads(report_file.read_text(encoding="utf-8"))
        spec = specs.get((report.get("usecase"), report.get("spec")))
        if spec is None or report.get("feature_table_version") is None:
            continue  # a model spec removed since, or a report of an earlier format
        uri = f"{workspace.lakehouse_root.rstrip('/')}/gold/{report['usecase']}/{spec.feature_table}"
        name = f"{report_file.parent.name}__training_set"
        found.append(LakehouseTable("ml", name, uri, report["feature_table_version"], spec.row_filter))
    return found


def discover(workspace: Workspace) -> list[LakehouseTable]:
    """Every queryable table of the workspace's lakehouse, sorted by schema and name."""
    root = workspace.lakehouse_root
    options = storage_options_of(workspace)
    layers = dbt_layers(workspace)
    tables = []
    for parts in delta_folders(root, options):
        if len(parts) < 2 or parts[:2] in SKIPPED:
            continue
        uri = "/".join([root.rstrip("/"), *parts])
        schema, name = classify(parts)
        tables.append(LakehouseTable(schema, name, uri))
        if schema == "gold" and parts[-1] in layers:
            tables.append(LakehouseTable(layers[parts[-1]], name, uri))
        if schema == "quarantine":  # its earlier name, still in scripts: bronze.<uc>__<source>__quarantine
            tables.append(LakehouseTable("bronze", f"{name}{QUARANTINE_SUFFIX}", uri, listed=False))
    tables.extend(training_sets(workspace))
    return sorted(tables, key=lambda t: (t.schema, t.name))


def register_tables(con: duckdb.DuckDBPyConnection, workspace: Workspace) -> list[LakehouseTable]:
    """Create a view `schema.name` in `con` for every table; returns those registered (a table deleted meanwhile is
    left out)."""
    options = storage_options_of(workspace)
    registered = []
    for table in discover(workspace):
        try:
            select = table.select_sql(con, options)
        except TableNotFoundError:
            continue
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(table.schema)}")
        con.execute(f"CREATE OR REPLACE VIEW {quote_ident(table.schema)}.{quote_ident(table.name)} AS {select}")
        registered.append(table)
    return registered


def find_table(workspace: Workspace, qualified: str) -> LakehouseTable:
    """The table named `schema.name`; LookupError naming the closest known names."""
    tables = {t.qualified: t for t in discover(workspace)}
    if qualified in tables:
        return tables[qualified]
    close = difflib.get_close_matches(qualified, list(tables), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(tables) or 'none yet'}"
    raise LookupError(f"no table {qualified!r} in the lakehouse ({hint}); `foundation tables` lists them")


def read_table(qualified: str, workspace: Workspace | Path | str | None = None) -> pa.Table:
    """The current snapshot of a lakehouse table as an Arrow table: `.to_pandas()`, or `polars.from_arrow(...)`.

    `qualified` is `schema.name` as `foundation tables` lists it, e.g. `gold.fleet_maintenance__fct_truck_day`;
    `workspace` defaults to the one found from the current folder (or $FOUNDATION_WORKSPACE)."""
    opened = workspace if isinstance(workspace, Workspace) else Workspace.open(Path(workspace) if workspace else None)
    table = find_table(opened, qualified)
    con = duckdb.connect()
    try:
        return con.sql(table.select_sql(con, storage_options_of(opened))).to_arrow_table()
    finally:
        con.close()


def table_stats(table: LakehouseTable, storage_options: dict[str, str] | None = None) -> dict[str, Any]:
    """Rows (from the Delta log's file statistics: no data read), Delta version and when it was last written."""
    delta = DeltaTable(table.uri, version=table.version, storage_options=storage_options)
    actions = pa.table(delta.get_add_actions(flatten=True))
    rows = sum(v or 0 for v in actions.column("num_records").to_pylist()) if actions.num_rows else 0
    if table.where:
        rows = None  # a filtered view: its count needs a scan (`foundation sql "select count(*) ..."`)
    last = delta.history(1)[0].get("timestamp")
    updated = datetime.fromtimestamp(last / 1000, UTC).isoformat(timespec="seconds") if last else None
    return {
        "layer": table.schema,
        "name": table.name,
        "table": table.qualified,
        "rows": rows,
        "delta_version": delta.version(),
        "updated_at": updated,
        "uri": table.uri,
    }


def list_tables(workspace: Workspace, layer: str | None = None) -> list[dict[str, Any]]:
    """`table_stats` of every table (of one layer/schema), for `foundation tables`."""
    options = storage_options_of(workspace)
    listed = []
    for table in discover(workspace):
        if not table.listed or layer not in (None, table.schema):
            continue
        try:
            listed.append(table_stats(table, options))
        except TableNotFoundError:
            continue
    return listed
