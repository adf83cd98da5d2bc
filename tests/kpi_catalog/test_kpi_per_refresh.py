"""KPIs without a time column (issue 18 item 6): one value per refresh, validated, compiled, built by real dbt-duckdb
(the framework's macros, an incremental model keeping the earlier refreshes) and shown by the catalogue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import yaml
from dbt.cli.main import dbtRunner
from deltalake import write_deltalake
from pydantic import ValidationError

from foundation.engine.dbt.kpi_models import DUCKDB_TYPES, SPARK_TYPES, ContractTypes, kpi_model_sql, kpi_properties
from foundation.engine.dbt.publish import catalog_path
from foundation.engine.dbt.spark import spark_profile_output
from foundation.specs.kpi import KpiRef, KpiSpec
from kpi_catalog.catalogue import KpiCatalog
from tests.engine.dbt.conftest import REPO

SPEC = {
    "id": "open_tickets",
    "label": "Open tickets",
    "description": "Tickets not closed yet, counted at each refresh.",
    "owner": "support@example.com",
    "unit": "tickets",
    "direction": "lower",
    "target": 3,
    "dimensions": ["queue"],
    "model": "tickets",
    "expression": "count(*)",
    "filter": "not closed",
}


def test_a_kpi_without_time_has_the_one_grain_refresh() -> None:
    spec = KpiSpec(**SPEC)
    assert spec.grains == ["refresh"] and spec.snapshot
    with pytest.raises(ValidationError, match=r"grains \['day'\] need a `time` column"):
        KpiSpec(**SPEC, grains=["day"])
    with pytest.raises(ValidationError, match="'refresh' is for a KPI without `time`"):
        KpiSpec(**SPEC, time="opened_on", grains=["refresh"])
    with pytest.raises(ValidationError, match="needs model and expression"):
        KpiSpec(**{k: v for k, v in SPEC.items() if k != "expression"})
    assert not KpiSpec(**SPEC, time="opened_on").snapshot
    model_kpi = {k: v for k, v in SPEC.items() if k not in ("model", "expression", "filter", "dimensions")}
    with pytest.raises(ValidationError, match="a model KPI is counted per day, week or month"):
        KpiSpec(**model_kpi, predictions="churn", grains=["refresh"])


def dbt_project(
    root: Path, tickets: list[tuple[str, bool]], output: dict | None = None, types: ContractTypes = DUCKDB_TYPES
) -> None:
    """A dbt project (dbt-duckdb unless `output` says otherwise) with the framework's macros, a `tickets` model and
    the compiled KPI."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    project = {
        "name": "kpi_refresh",
        "version": "1.0",
        "profile": "kpi_refresh",
        "model-paths": ["models"],
        "macro-paths": [str(REPO / "foundation" / "engine" / "dbt" / "macros")],
    }
    (root / "dbt_project.yml").write_text(yaml.safe_dump(project), encoding="utf-8")
    output = output or {"type": "duckdb", "path": str(root / "w.duckdb")}
    profile = {"kpi_refresh": {"target": "dev", "outputs": {"dev": output}}}
    (root / "profiles.yml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    rows = " union all ".join(
        f"select '{queue}' as queue, {str(closed).lower()} as closed" for queue, closed in tickets
    )
    (root / "models" / "tickets.sql").write_text(rows + "\n", encoding="utf-8")
    kpi = KpiRef("support", KpiSpec(**SPEC), root / "open_tickets.yaml")
    (root / "models" / "kpi_open_tickets.sql").write_text(kpi_model_sql(kpi, "open_tickets.yaml"), encoding="utf-8")
    (root / "models" / "_kpis.yml").write_text(kpi_properties([(kpi, "open_tickets.yaml")], types), encoding="utf-8")


def build(root: Path) -> list[tuple]:
    result = dbtRunner().invoke(["build", "--project-dir", str(root), "--profiles-dir", str(root), "--quiet"])
    assert result.success, result.exception
    con = duckdb.connect(str(root / "w.duckdb"))  # dbt-duckdb keeps its connection (same configuration) open
    try:
        return con.execute("select grain, period, queue, value from kpi_open_tickets order by period, queue").fetchall()
    finally:
        con.close()


def test_each_refresh_keeps_one_value_per_day_beside_the_earlier_days(tmp_path: Path) -> None:
    root = tmp_path / "dbt"
    today = date.today()
    dbt_project(root, [("billing", False), ("billing", False), ("tech", False), ("tech", True)])
    assert build(root) == [
        ("refresh", today, "billing", 2.0),
        ("refresh", today, "tech", 1.0),
        ("refresh", today, None, 3.0),
    ]

    # Yesterday's refresh, as an earlier build left it; then today's data changes and the platform refreshes twice.
    con = duckdb.connect(str(root / "w.duckdb"))
    con.execute("insert into kpi_open_tickets values ('refresh', ?, null, 7.0)", [today - timedelta(days=1)])
    con.close()
    dbt_project(root, [("billing", False), ("tech", True)])
    build(root)
    rows = build(root)  # a second refresh the same day replaces today's rows: no duplicate
    assert rows == [
        ("refresh", today - timedelta(days=1), None, 7.0),
        ("refresh", today, "billing", 1.0),
        ("refresh", today, None, 1.0),
    ]


def test_the_catalogue_shows_the_latest_refresh_against_target(tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n", encoding="utf-8")
    lakehouse = tmp_path / ".foundation" / "lakehouse"
    uri = str(lakehouse / "gold" / "support" / "kpi_open_tickets")
    days = [date(2026, 3, 1), date(2026, 3, 2)]
    write_deltalake(
        uri, pa.table({"grain": ["refresh"] * 2, "period": days, "queue": [None, None], "value": [5.0, 2.0]})
    )
    spec = KpiSpec(**SPEC)
    entry = {**spec.model_dump(mode="json", exclude_none=True), "usecase": "support", "gold_uri": uri}
    path = catalog_path(str(lakehouse))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"generated_at": "2026-03-02T00:00:00Z", "kpis": [entry]}), encoding="utf-8")
    summary = KpiCatalog(str(lakehouse)).summary("open_tickets")
    assert summary["grain"] == "refresh"
    assert summary["latest"] == {"period": "2026-03-02", "value": 2.0}
    assert (summary["state"], summary["trend"]) == ("on_target", "improving")


def spark_build(root: Path) -> list[tuple]:
    """`dbt build` on a local Spark session (its own process: the JVM ends with it), the table read back by DuckDB."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", "--project-dir", str(root), "--profiles-dir", str(root)],
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    table = root / "spark" / "warehouse" / "kpi.db" / "kpi_open_tickets"
    con = duckdb.connect()
    try:
        return con.execute(
            f"select grain, cast(period as date), queue, value from read_parquet('{table}/**/*.parquet', "
            "hive_partitioning = true) order by period, queue"
        ).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_on_spark_a_second_refresh_the_same_day_replaces_its_partition(tmp_path: Path) -> None:
    """dbt-spark's insert_overwrite (dynamic partition overwrite, by `period`) on Parquet tables: the same contract,
    the day's rows replaced. Other days' partitions are left as they are by the same mechanism."""
    pytest.importorskip("pyspark", reason="dbt on Spark needs the spark dependency group: uv sync --group spark")
    root = tmp_path / "dbt"
    output = {**spark_profile_output(root / "spark"), "schema": "kpi"}
    today = date.today()
    dbt_project(root, [("billing", False), ("tech", False)], output, SPARK_TYPES)
    assert spark_build(root) == [
        ("refresh", today, "billing", 1.0),
        ("refresh", today, "tech", 1.0),
        ("refresh", today, None, 2.0),
    ]
    dbt_project(root, [("billing", False), ("billing", False)], output, SPARK_TYPES)
    assert spark_build(root) == [("refresh", today, "billing", 2.0), ("refresh", today, None, 2.0)]
