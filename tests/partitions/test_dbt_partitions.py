"""A dbt model built per partition (dbt's microbatch) from a partitioned source, through foundation backfill."""

from __future__ import annotations

import json

import duckdb
import pytest
from test_backfill import SOURCE, foundation, readings

DBT_PROJECT = """\
name: foundation
version: "1.0.0"
profile: foundation
config-version: 2
model-paths: ["models"]
macro-paths: ["macros", "{{ env_var('FOUNDATION_DBT_MACROS') }}"]
models:
  foundation:
    +materialized: table
    uc:
      +schema: uc
"""
SCHEMA_MACRO = """\
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
"""
DAILY_MODEL = """\
{{ config(materialized='incremental', incremental_strategy='microbatch', event_time='reading_day',
          batch_size='day', begin='2026-01-01') }}
select cast(date_trunc('day', ts) as timestamp) as reading_day, count(*) as readings, sum(value) as total
from {{ source('uc', 'readings') }}
group by all
"""


def daily_totals(kit) -> dict[str, tuple[int, float]]:
    con = duckdb.connect(str(kit.root / ".foundation" / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT strftime(reading_day, '%Y-%m-%d'), readings, total FROM uc.fct_readings_daily")
        return {day: (n, total) for day, n, total in rows.fetchall()}
    finally:
        con.close()


def expected(csv_text: str, days: list[str]) -> dict[str, tuple[int, float]]:
    totals: dict[str, tuple[int, float]] = {}
    for line in csv_text.strip().splitlines()[1:]:
        ts, _, value = line.split(",")
        n, total = totals.get(ts[:10], (0, 0.0))
        totals[ts[:10]] = (n + 1, total + float(value))
    return {d: totals[d] for d in days}


@pytest.mark.slow
def test_a_microbatch_model_is_built_per_partition_and_a_rerun_replaces_its_window(make_workspace):
    source_text = readings(range(1, 8))
    kit = make_workspace(
        files={
            "landing/readings/all.csv": source_text,
            "dbt_project/dbt_project.yml": DBT_PROJECT,
            "dbt_project/macros/generate_schema_name.sql": SCHEMA_MACRO,
            "dbt_project/models/uc/marts/fct_readings_daily.sql": DAILY_MODEL,
        },
        settings={"state_dir": ".foundation"},
    )
    kit.write_source(SOURCE, name="readings")

    result = foundation(kit, "backfill", "uc", "--from", "2026-01-02", "--to", "2026-01-04", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["data"]  # dbt's own output went to the log, not into the JSON
    assert report["assets"] == ["uc/bronze/readings", "uc/marts/fct_readings_daily"]
    assert report["done"] == ["2026-01-02", "2026-01-03", "2026-01-04"] and report["failed"] == []
    days = ["2026-01-02", "2026-01-03", "2026-01-04"]
    assert daily_totals(kit) == expected(source_text, days)

    # Day 3 changes at the source: re-building its partition replaces that day of the model, and only that day.
    header = len("ts,sensor,value\n")
    changed = readings(range(1, 3)) + readings(range(3, 4), "b", range(0, 24, 12))[header:]
    changed += readings(range(4, 8))[header:]
    kit.land("landing/readings/all.csv", changed)
    result = foundation(kit, "backfill", "uc", "--from", "2026-01-03", "--to", "2026-01-03", "--json")
    assert result.returncode == 0, result.stderr
    assert daily_totals(kit) == expected(changed, days)
    assert daily_totals(kit)["2026-01-03"] == (2, 612.0)
