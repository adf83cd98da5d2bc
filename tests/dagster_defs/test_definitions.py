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


class RecordedProgress:
    """A `load_progress` resource that writes down what it is told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, ...]] = []

    def on_start(self, source: str) -> None:
        self.told.append(("start", source))

    def on_rows(self, source: str, rows_read: int) -> None:
        self.told.append(("rows", source, str(rows_read)))

    def on_end(self, source: str, failed: bool) -> None:
        self.told.append(("end", source, "failed" if failed else "ok"))


def test_the_run_returns_each_load_report_and_error_and_progress_is_passed_in(tmp_path: Path) -> None:
    """No module-level listener: the caller of the run gets the reports (and a failed load's error) from the run's
    result, and the progress it passes as a resource is told of rows as they are read."""
    from foundation.dagster_defs.definitions import load_reports

    root = _workspace(tmp_path)
    (root / "landing" / "catalogue.json").write_text("not json")  # its load fails
    defs = build_definitions(root)
    progress = RecordedProgress()
    result = dg.materialize(
        list(defs.assets),
        resources={**defs.resources, "load_progress": progress},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    reports, errors = load_reports(result)
    assert list(reports) == ["shop/orders"] and list(errors) == ["shop/catalogue"]
    orders = reports["shop/orders"]
    assert (orders.status, orders.rows_read, orders.rows_landed, orders.reconciles) == ("landed", 2, 2, True)
    assert [name for name, _ in orders.schema][:2] == ["order_id", "amount_eur"]
    assert "Malformed JSON" in errors["shop/catalogue"] and "catalogue.json" in errors["shop/catalogue"]
    assert ("start", "shop/orders") in progress.told and ("end", "shop/orders", "ok") in progress.told
    assert ("rows", "shop/orders", "2") in progress.told
    assert progress.told[-1][0] == "end" and ("end", "shop/catalogue", "failed") in progress.told
