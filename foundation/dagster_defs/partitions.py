"""Dagster partitions of partitioned sources (and of the dbt models built per partition), from the source YAML.

A source's `partitions: {by: daily, start: ...}` becomes a `DailyPartitionsDefinition` (hourly, monthly alike; UTC)
on its bronze asset; a materialization of one partition loads that partition's window and replaces it. Runs that
materialise everything at once (`foundation run`, `foundation ingest`) leave partitioned assets out: they are loaded
per partition, by their schedule (the latest partition) or by `foundation backfill`.
"""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations at runtime.

from collections.abc import Iterable
from datetime import UTC, datetime

import dagster as dg

from foundation.core.workspace import SourceRef
from foundation.dagster_defs.instance import usecase_tags
from foundation.engine.lakehouse.partitions import PartitionWindow
from foundation.specs.partitions import PartitionsSpec


def partitions_definition(spec: PartitionsSpec | None) -> dg.TimeWindowPartitionsDefinition | None:
    """The Dagster partitions of a `partitions:` block (None: not partitioned)."""
    if spec is None:
        return None
    # The first partition is the one holding `start` (Dagster would begin at the next whole month, day or hour).
    start = spec.start_time.replace(minute=0, second=0, microsecond=0)
    if spec.by != "hourly":
        start = start.replace(hour=0, day=1 if spec.by == "monthly" else start.day)
    if spec.by == "hourly":
        return dg.HourlyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d-%H:%M"), timezone="UTC")
    if spec.by == "monthly":
        return dg.MonthlyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), timezone="UTC")
    return dg.DailyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), timezone="UTC")


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def partition_window(context: dg.AssetExecutionContext) -> PartitionWindow:
    """The window of the partition (or range of partitions) a run materialises."""
    window = context.partition_time_window
    keys = context.partition_key_range
    key = keys.start if keys.start == keys.end else f"{keys.start}...{keys.end}"
    return PartitionWindow(key=key, start=_naive_utc(window.start), end=_naive_utc(window.end))


def partitioned_schedule(source: SourceRef, target: dg.AssetKey) -> dg.ScheduleDefinition | None:
    """A partitioned source's schedule: at each tick of its cron, the latest complete partition."""
    partitions = partitions_definition(source.spec.partitions)
    if partitions is None or source.spec.schedule == "manual":
        return None
    job = dg.define_asset_job(
        f"{source.usecase}__{source.name}__partition_job",
        selection=dg.AssetSelection.assets(target),
    )

    @dg.schedule(
        name=f"{source.usecase}__{source.name}__schedule",
        cron_schedule=source.spec.schedule,
        job=job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,  # as every source's schedule: the daemon alone runs it
        description=f"Refresh plan of {source.key} (from {source.path.name}): the latest complete partition",
    )
    def _latest_partition(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        keys = partitions.get_partition_keys(current_time=context.scheduled_execution_time)
        if not keys:
            return dg.SkipReason(f"no complete partition of {source.key} yet")
        key = keys[-1]
        return dg.RunRequest(run_key=key, partition_key=key, tags=usecase_tags(source.usecase))

    return _latest_partition


def partitioned_keys(assets: Iterable[dg.AssetsDefinition | dg.AssetSpec]) -> list[dg.AssetKey]:
    """Keys of the partitioned assets: left out of the runs that materialise everything without a partition."""
    keys: list[dg.AssetKey] = []
    for asset in assets:
        if isinstance(asset, dg.AssetsDefinition) and asset.partitions_def is not None:
            keys.extend(asset.keys)
    return keys
