"""dbt on Spark (`dbt.target: spark`): the dbt-spark profile, and the bronze tables registered in Spark's catalogue.

dbt-spark's `session` method runs Spark inside the dbt process (a local PySpark: `uv sync --group spark`), with a
Hive metastore (Derby) and a warehouse folder under `<state>/dbt/spark/`, so the tables dbt builds outlive the run.

Bronze is Delta. A Spark cluster reads it with the Delta reader (`delta.\\`s3://…/bronze/<uc>/<source>\\``); the
local session cannot, since delta-spark's jars come from Maven, which is out of reach here (the `delta-spark` wheel
ships none). So each source becomes a persistent view `bronze.<uc>__<source>` over the Parquet files of its
*current* Delta snapshot (`DeltaTable.file_uris()`, as foundation.engine.dbt.warehouse does for DuckDB), refreshed
right before each build: a view pins the snapshot it was created on.

The views are created by the dbt run itself (on-run-start, foundation/engine/dbt/macros/bronze_views.sql), from a
file of statements written here right before the build: no second JVM, and the embedded metastore has one user at a
time.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deltalake.exceptions import TableNotFoundError

from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.dbt.sources import BRONZE_SCHEMA, declared_columns, source_view_name
from foundation.engine.lakehouse.object_store import open_delta

SPARK_TARGET = "spark"
SPARK_SCHEMA = "default"  # dbt-spark's target schema; every model builds into its use case's schema anyway
BRONZE_VIEWS_FILE = "bronze_views.sql"  # one statement a line, read by the on-run-start hook
BRONZE_VIEWS_SETTING = "spark.foundation.bronze_views"  # where the hook finds that file

# DuckDB type names (source YAML, bronze) -> Spark SQL type names, for the typed empty view of a never-loaded source.
_SPARK_TYPES = {
    "VARCHAR": "string",
    "BIGINT": "bigint",
    "INTEGER": "int",
    "SMALLINT": "smallint",
    "DOUBLE": "double",
    "FLOAT": "float",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp_ntz",
    "TIMESTAMPTZ": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
}
# Delta type names -> Spark SQL type names.
_DELTA_TYPES = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint"}
_GLOB_SPECIALS = "\\{}[]*?,"


def is_spark_target(workspace: Workspace) -> bool:
    return workspace.settings.dbt.target == SPARK_TARGET


def spark_state_dir(workspace: Workspace) -> Path:
    return workspace.state_dir / "dbt" / "spark"


# -- pure: configuration and SQL ------------------------------------------------------------------------------------


def spark_conf(state_dir: Path, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Spark settings of the local session: small, loopback only, no UI, UTC, catalogue kept under `state_dir`.

    `overrides` (settings `dbt.spark_conf`) win. UTC matters: DuckDB computes in UTC, and a Spark session in the
    machine's zone would shift every cast of a timestamp to a date.
    """
    state_dir = Path(state_dir)
    conf = {
        "spark.master": "local[2]",
        "spark.app.name": "foundation-dbt",
        "spark.ui.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": "1g",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(state_dir / "warehouse"),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={state_dir / 'metastore_db'};create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={state_dir}",
        # A Delta table's files can differ in schema (columns added over time): read their union, as DuckDB does.
        "spark.sql.parquet.mergeSchema": "true",
        BRONZE_VIEWS_SETTING: str(state_dir / BRONZE_VIEWS_FILE),
    }
    conf.update(overrides or {})
    return conf


def spark_profile_output(state_dir: Path, overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The dbt-spark output of the generated profile (`method: session`: Spark runs inside the dbt process)."""
    return {
        "type": "spark",
        "method": "session",
        "host": "localhost",  # required by dbt-spark, unused by the session method
        "schema": SPARK_SCHEMA,
        "threads": 1,  # one SparkSession serves the run; Spark parallelises inside each query
        "server_side_parameters": spark_conf(state_dir, overrides),
    }


def _glob_escape(path: str) -> str:
    return "".join("\\" + c if c in _GLOB_SPECIALS else c for c in path)


def parquet_files_relation(files: list[str]) -> str:
    """A Spark SQL relation over exactly these Parquet files: one Hadoop glob `{file1,file2,…}`.

    A glob, because a view's SQL can name a single path only, and the table folder also holds files that older
    Delta versions removed.
    """
    if not files:
        raise ValueError("no files: use empty_relation_sql for a table without data")
    escaped = [_glob_escape(f) for f in files]
    glob = escaped[0] if len(escaped) == 1 else "{" + ",".join(escaped) + "}"
    return "parquet.`" + glob.replace("`", "``") + "`"


def spark_type(duckdb_or_delta_type: str) -> str:
    text = duckdb_or_delta_type.strip()
    return _SPARK_TYPES.get(text.upper(), _DELTA_TYPES.get(text.lower(), text.lower()))


def empty_relation_sql(columns: list[tuple[str, str]]) -> str:
    """A typed relation without rows: what a source that never landed reads."""
    cols = ", ".join(f"cast(null as {spark_type(t)}) as `{n.replace('`', '``')}`" for n, t in columns)
    return f"select {cols or 'null as _empty'} where false"


def bronze_view_statement(view: str, files: list[str], columns: list[tuple[str, str]]) -> str:
    """`create or replace view bronze.<view>` over a snapshot's files (or typed and empty when there are none)."""
    body = f"select * from {parquet_files_relation(files)}" if files else empty_relation_sql(columns)
    return f"create or replace view {BRONZE_SCHEMA}.`{view}` as {body}"


# -- I/O: the snapshot files, and the registration in a child process -------------------------------------------------


def bronze_view_statements(workspace: Workspace, sources: list[SourceRef] | None = None) -> dict[str, str]:
    """View name -> its `create or replace view` statement, from each source's current Delta snapshot."""
    sources = workspace.sources() if sources is None else sources
    statements = {}
    for source in sources:
        view = source_view_name(source.usecase, source.name)
        uri = workspace.bronze_uri(source.usecase, source.name)
        try:
            table = open_delta(workspace, uri)
        except TableNotFoundError:
            statements[view] = bronze_view_statement(view, [], declared_columns(source))
            continue
        files = table.file_uris()  # never to_pyarrow_*: the interpreter aborts at exit after those here
        columns = [(f.name, str(getattr(f.type, "type", f.type))) for f in table.schema().fields]
        statements[view] = bronze_view_statement(view, files, columns or declared_columns(source))
    return statements


def bronze_views_file(workspace: Workspace) -> Path:
    return spark_state_dir(workspace) / BRONZE_VIEWS_FILE


def write_bronze_views(workspace: Workspace, sources: list[SourceRef] | None = None) -> dict[str, str]:
    """Write the statements that (re)create `bronze.<uc>__<source>`; the next dbt run on Spark executes them first.

    Returns view -> statement. Hold the warehouse lock: the file is read when a build starts.
    """
    statements = bronze_view_statements(workspace, sources)
    path = bronze_views_file(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(s + "\n" for s in statements.values()), encoding="utf-8")
    tmp.replace(path)
    return statements
