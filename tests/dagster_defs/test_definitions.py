"""Dagster definitions built from YAML: keys, groups, owners, kinds, schedules; in-process materialisation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from foundation.dagster_defs import build_definitions

REPO = Path(__file__).resolve().parents[2]


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    sources = tmp_path / "usecases" / "shop" / "sources"
    sources.mkdir(parents=True)
    (sources / "orders.yaml").write_text(
        """\
name: orders
description: Orders from the web shop, hourly dumps
owner: shop-data@example.com
schedule: "15 * * * *"
extract: {type: csv, path: landing/orders.csv}
load: {mode: append}
tags: [sales]
"""
    )
    (sources / "catalogue.yaml").write_text(
        """\
name: catalogue
description: Product catalogue, replaced by hand
owner: shop-data@example.com
schedule: manual
extract: {type: json, path: landing/catalogue.json}
load: {mode: replace}
"""
    )
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "orders.csv").write_text("Order ID,Amount (EUR)\n1,9.5\n2,12\n")
    (tmp_path / "landing" / "catalogue.json").write_text('[{"sku": "A", "price": 1.5}]')
    return tmp_path


def test_assets_carry_yaml_metadata(tmp_path: Path) -> None:
    defs = build_definitions(_workspace(tmp_path))
    specs = {spec.key: spec for asset in defs.assets for spec in asset.specs}
    orders = specs[dg.AssetKey(["shop", "bronze", "orders"])]
    assert orders.group_name == "shop"
    assert orders.owners == ["shop-data@example.com"]
    assert orders.kinds == {"csv", "delta"}
    assert orders.description == "Orders from the web shop, hourly dumps"
    assert orders.metadata["load_mode"] == "append"
    assert dg.AssetKey(["shop", "bronze", "catalogue"]) in specs


def test_one_schedule_per_scheduled_source(tmp_path: Path) -> None:
    defs = build_definitions(_workspace(tmp_path))
    schedules = {s.name: s for s in defs.schedules}
    assert list(schedules) == ["shop__orders__schedule"]  # `manual` gets none
    assert schedules["shop__orders__schedule"].cron_schedule == "15 * * * *"


def test_materialise_in_process_records_counts_and_schema(tmp_path: Path) -> None:
    defs = build_definitions(_workspace(tmp_path))
    result = dg.materialize(list(defs.assets), resources=defs.resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    by_key = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    orders = by_key[dg.AssetKey(["shop", "bronze", "orders"])]
    assert orders["rows_landed"].value == 2
    assert orders["dagster/row_count"].value == 2
    assert orders["delta_version"].value == 0
    columns = [c.name for c in orders["dagster/column_schema"].value.columns]
    assert columns[:2] == ["order_id", "amount_eur"]  # raw names snake_cased
    assert "_load_id" in columns
    assert "| order_id |" in orders["preview"].value


def test_repository_definitions_load_with_dagster_cli() -> None:
    """What `dagster dev -f definitions.py` loads: the repository's own use cases."""
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-f", "definitions.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_freshness_policy_fits_any_schedule() -> None:
    """warn < fail for every cadence (Dagster refuses otherwise); weekday crons allow the weekend gap."""
    from datetime import timedelta

    from foundation.dagster_defs.definitions import freshness_policy
    from foundation.specs.source import SourceSpec

    def policy(schedule: str) -> dg.FreshnessPolicy:
        spec = SourceSpec.model_validate(
            {
                "name": "s",
                "description": "a test source",
                "owner": "a@b.co",
                "schedule": schedule,
                "extract": {"type": "csv", "path": "x.csv"},
            }
        )
        result = freshness_policy(spec)
        assert result is not None
        return result

    def seconds(window: object) -> float:
        return timedelta(days=window.days, seconds=window.seconds).total_seconds()  # type: ignore[attr-defined]

    five = policy("*/5 * * * *")
    assert seconds(five.warn_window) < seconds(five.fail_window) == 15 * 60
    weekdays = policy("0 6 * * 1-5")
    assert seconds(weekdays.warn_window) >= 3 * 86400  # Friday 06:00 to Monday 06:00 is not late
