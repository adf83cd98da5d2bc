"""dbt models built per partition: dbt's own `microbatch` incremental strategy, one Dagster partition per batch.

A model configured `materialized='incremental', incremental_strategy='microbatch', event_time=..., batch_size='day',
begin='2026-01-01'` is a partitioned Dagster asset (daily from `begin`; `hour` -> hourly, `month` -> monthly). A
partition's run is `dbt build --event-time-start <window start> --event-time-end <window end>`: dbt replaces exactly
that window of the model (dbt-duckdb: delete + insert on `event_time` in one statement), and reads only that window
of the upstream sources and models that declare an `event_time` (a partitioned source's generated dbt source does).
No WHERE clause to write: the window filter is dbt's.

Other batch sizes (`year`) are built with the other models, unpartitioned.
"""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations at runtime.

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from foundation.dagster_defs.resources import FoundationResource
from foundation.engine.dbt.partial_parse import reuse_partial_parse
from foundation.engine.dbt.paths import DbtPaths
from foundation.engine.dbt.warehouse import refresh_bronze_views, warehouse_lock

PARTITIONED_BATCH_SIZES = {"hour", "day", "month"}


def microbatch_models(manifest: Mapping[str, Any]) -> dict[tuple[str, str], list[str]]:
    """Names of the models built per partition, by (batch_size, begin)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for node in manifest.get("nodes", {}).values():
        config = node.get("config") or {}
        if node.get("resource_type") != "model" or config.get("incremental_strategy") != "microbatch":
            continue
        if config.get("batch_size") not in PARTITIONED_BATCH_SIZES or not config.get("begin"):
            continue
        groups.setdefault((str(config["batch_size"]), str(config["begin"])), []).append(node["name"])
    return {key: sorted(names) for key, names in sorted(groups.items())}


def batch_partitions(batch_size: str, begin: str) -> dg.TimeWindowPartitionsDefinition:
    start = datetime.fromisoformat(begin)
    start = start.astimezone(UTC).replace(tzinfo=None) if start.tzinfo else start
    if batch_size == "hour":
        return dg.HourlyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d-%H:%M"), timezone="UTC")
    if batch_size == "month":
        return dg.MonthlyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), timezone="UTC")
    return dg.DailyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), timezone="UTC")


def event_time_args(window: dg.TimeWindow) -> list[str]:
    """dbt's flags for one batch window (UTC)."""
    start, end = (moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") for moment in (window.start, window.end))
    return ["--event-time-start", start, "--event-time-end", end]


def partitioned_dbt_assets(
    paths: DbtPaths, manifest: Mapping[str, Any], translator: Any, pool: str
) -> list[dg.AssetsDefinition]:
    """One partitioned dbt op per (batch_size, begin) of the microbatch models."""

    assets = []
    for (batch_size, begin), names in microbatch_models(manifest).items():

        @dbt_assets(
            manifest=paths.manifest,
            select=" ".join(names),
            dagster_dbt_translator=translator,
            name=f"dbt_models_by_{batch_size}_{begin[:10].replace('-', '')}",
            partitions_def=batch_partitions(batch_size, begin),
            pool=pool,
        )
        def _partitioned(
            context: dg.AssetExecutionContext, dbt: DbtCliResource, foundation: FoundationResource
        ) -> Iterator[Any]:
            workspace = foundation.workspace()
            with warehouse_lock(workspace, on_wait=lambda: context.log.info("waiting for the warehouse")):
                refresh_bronze_views(workspace)
                run_target = paths.target_dir / "run"
                reuse_partial_parse(paths.target_dir, run_target)
                args = ["build", *event_time_args(context.partition_time_window)]
                yield from dbt.cli(args, context=context, target_path=run_target).stream()

        assets.append(_partitioned)
    return assets


def partitioned_model_names(manifest: Mapping[str, Any]) -> list[str]:
    """Every model built per partition: left out of the unpartitioned `dbt build`."""
    return sorted(name for names in microbatch_models(manifest).values() for name in names)
