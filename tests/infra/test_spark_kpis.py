"""dbt on Spark against dbt on DuckDB, on the same landed data: the fleet marts and every KPI value must agree.

Two workspaces share one lakehouse (the demo's fleet, landed once): one builds with the embedded DuckDB target, the
other with `dbt.target: spark` (dbt-spark `method: session` on a local PySpark, started by dbt itself). Spark's
tables are Parquet folders in its warehouse (Hive layout `<schema>.db/<table>`), read back here with DuckDB so
that no second JVM is needed. Real components throughout; only a Spark *cluster* is out of reach (local[2]).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest
import yaml

from foundation.core.workspace import Workspace
from foundation.demo.fleet_data import FleetSize, generate_fleet_landing
from foundation.engine.dbt.invocation import dbt_env, dbt_executable
from foundation.engine.dbt.project import prepare_project
from foundation.engine.dbt.spark import bronze_views_file, spark_state_dir
from foundation.engine.dbt.warehouse import refresh_bronze_views, warehouse_lock, warehouse_path
from tests.engine.dbt.conftest import copy_platform

if not os.environ.get("CI"):  # CI installs the group (`make test`); there a missing PySpark must fail, not skip
    pytest.importorskip("pyspark", reason="dbt on Spark needs the spark dependency group: uv sync --group spark")
pytestmark = pytest.mark.slow

USECASE = "fleet_maintenance"
SOURCES = [
    f"{USECASE}/{name}" for name in ("engine_telemetry", "trucks", "maintenance", "failures")
]  # what the marts read
MARTS = ["dim_trucks", "fct_downtime", "fct_failures", "fct_maintenance", "fct_truck_day", "features_truck_day"]
KPIS = [
    "kpi_failure_rate",
    "kpi_failures_per_1000_hours",
    "kpi_fleet_availability",
    "kpi_mtbf_hours",
    "kpi_mttr_hours",
]
FRESHNESS_KPI = "kpi_data_freshness_hours"  # hours since the last load at build time: depends on when each build ran


def ingest(root: Path) -> None:
    from foundation.demo.workshop_api import running_workshop_api  # the maintenance/failures REST sources

    with running_workshop_api(root / "landing" / USECASE):
        result = subprocess.run(
            [sys.executable, "-m", "foundation.cli.main", "--workspace", str(root), "ingest", *SOURCES],
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def dbt_build(workspace: Workspace, command: str) -> float:
    """Refresh the bronze views, then `dbt <command>` the use case; returns the time the build started (epoch s)."""
    paths = prepare_project(workspace)
    with warehouse_lock(workspace):
        refresh_bronze_views(workspace)
        started = time.time()
        result = subprocess.run(
            [dbt_executable(), command, "--select", USECASE],
            env={**dbt_env(paths), "SPARK_LOCAL_IP": "127.0.0.1"},
            cwd=paths.project_dir,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return started


def spark_jvms(marker: str, wait_s: float = 30.0) -> set[int]:
    """JVMs still running with `marker` (the workspace's Spark folder) on their command line, after up to `wait_s`
    for them to finish exiting. Other engineers' or tests' JVMs on the machine do not count."""

    def running() -> set[int]:
        found = set()
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] == "java" and marker in " ".join(proc.info["cmdline"] or []):
                found.add(proc.pid)
        return found

    deadline = time.monotonic() + wait_s
    while (left := running()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("spark_kpis")
    duck_root = copy_platform(base / "duckdb")
    generate_fleet_landing(duck_root / "landing" / USECASE, FleetSize(trucks=8, days=30))
    ingest(duck_root)
    duck = Workspace.open(duck_root)
    duck_started = dbt_build(duck, "build")  # the data tests run on the embedded target

    spark_root = copy_platform(base / "spark")
    settings = yaml.safe_load((spark_root / "foundation.yaml").read_text(encoding="utf-8"))
    settings["lakehouse"]["root"] = duck.lakehouse_root  # the very same bronze Delta tables
    settings["dbt"]["target"] = "spark"
    (spark_root / "foundation.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    spark = Workspace.open(spark_root)
    # `run`, not `build`: the budget of this test (< 3 min on 2 cores) has no room for 40 data tests on Spark.
    spark_started = dbt_build(spark, "run")
    return {
        "duck": duck,
        "spark": spark,
        "duck_started": duck_started,
        "spark_started": spark_started,
        "java_left": spark_jvms(str(spark_state_dir(spark))),
    }


def duckdb_table(workspace: Workspace, table: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse_path(workspace)), read_only=True)
    try:
        return con.execute(f"select * from {USECASE}.{table}").fetchall()
    finally:
        con.close()


def spark_table(workspace: Workspace, table: str) -> list[tuple]:
    folder = spark_state_dir(workspace) / "warehouse" / f"{USECASE}.db" / table
    assert folder.is_dir(), f"Spark built no table {USECASE}.{table} (no {folder})"
    con = duckdb.connect()
    try:
        return con.execute(f"select * from read_parquet('{folder}/*.parquet')").fetchall()
    finally:
        con.close()


def kpi_points(rows: list[tuple]) -> dict[tuple, float | None]:
    """(grain, period, dimension) -> value; a KPI table has exactly those columns, value last."""
    points = {}
    for row in rows:
        key = tuple(row[:-1])
        assert key not in points, f"duplicate KPI point {key}"
        points[key] = row[-1]
    return points


def assert_same_values(name: str, duck: dict[tuple, float | None], spark: dict[tuple, float | None]) -> None:
    assert set(spark) == set(duck), (
        f"{name}: points only on DuckDB {set(duck) - set(spark)}, only on Spark {set(spark) - set(duck)}"
    )
    for key, expected in duck.items():
        got = spark[key]
        if expected is None:
            assert got is None, f"{name} {key}: DuckDB NULL, Spark {got}"
        else:
            assert got is not None and math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9), (
                f"{name} {key}: DuckDB {expected}, Spark {got}"
            )


def test_spark_builds_the_same_marts(builds: dict) -> None:
    for mart in MARTS:
        duck = duckdb_table(builds["duck"], mart)
        assert duck, f"{mart} is empty on DuckDB: the comparison would prove nothing"
        assert len(spark_table(builds["spark"], mart)) == len(duck), mart


@pytest.mark.parametrize("kpi", KPIS)
def test_spark_kpis_equal_duckdb_kpis(builds: dict, kpi: str) -> None:
    duck = kpi_points(duckdb_table(builds["duck"], kpi))
    assert duck, f"{kpi} has no points on DuckDB"
    assert_same_values(kpi, duck, kpi_points(spark_table(builds["spark"], kpi)))


def test_freshness_kpi_differs_only_by_the_time_between_builds(builds: dict) -> None:
    duck = kpi_points(duckdb_table(builds["duck"], FRESHNESS_KPI))
    spark = kpi_points(spark_table(builds["spark"], FRESHNESS_KPI))
    gap_h = (builds["spark_started"] - builds["duck_started"]) / 3600.0
    assert {k[2] for k in spark} == {k[2] for k in duck} and len(spark) == len(duck)
    for (_, _, source), value in spark.items():
        (expected,) = [v for k, v in duck.items() if k[2] == source]
        if expected is None:  # a source never loaded (not ingested here): no last load on either engine
            assert value is None, source
            continue
        # Spark built later: its "hours since load" is larger by the gap between the two builds, and no more.
        assert expected <= value <= expected + gap_h + 0.2, (source, expected, value, gap_h)


def test_spark_read_the_current_bronze_snapshot_and_left_no_jvm(builds: dict) -> None:
    statements = bronze_views_file(builds["spark"]).read_text(encoding="utf-8").splitlines()
    assert any(f"`{USECASE}__engine_telemetry` as select * from parquet." in s for s in statements)
    assert builds["java_left"] == set(), "dbt's Spark session left a JVM running"


def test_profile_selects_spark_and_keeps_a_duckdb_output(builds: dict) -> None:
    profile = yaml.safe_load((builds["spark"].state_dir / "dbt" / "profiles.yml").read_text(encoding="utf-8"))
    outputs = profile["foundation"]["outputs"]
    assert profile["foundation"]["target"] == "spark"
    assert outputs["spark"]["method"] == "session" and outputs["duckdb"]["type"] == "duckdb"
    conf = outputs["spark"]["server_side_parameters"]
    assert conf["spark.sql.session.timeZone"] == "UTC" and conf["spark.ui.enabled"] == "false"
    assert os.path.isdir(conf["spark.sql.warehouse.dir"])
