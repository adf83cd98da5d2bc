"""`foundation backfill`: the same Dagster asset backfill as the UI's "Materialize partitions" launches.

A `PartitionBackfill` is added to the workspace's instance (it shows in the UI's Backfills page with its runs). When a
`dagster-daemon` is running on that instance, its backfill daemon runs it and we only watch. When none is, this
process plays the daemon's part: it runs the backfill daemon's own iteration (`execute_backfill_iteration`) until the
backfill is done, with an instance whose run launcher executes each run in process (one run per partition), so no
code server or daemon is needed on a laptop or in CI.

Dagster has no public Python API to launch an asset backfill (the UI goes through GraphQL): these are the internals
the UI's mutation and the backfill daemon call (dagster 1.13). The tests run both paths, so an upgrade that moves
them fails there.
"""

# No `from __future__ import annotations` here: kept like the other dagster_defs modules.

import logging
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import LaunchRunContext
from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import BACKFILL_ID_TAG, PARTITION_NAME_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._serdes import ConfigurableClassData

from foundation.core.workspace import WORKSPACE_ENV, Workspace
from foundation.dagster_defs.definitions import bronze_asset_key
from foundation.dagster_defs.instance import usecase_tags

DEFS_MODULE = "foundation.dagster_defs.workspace_defs"  # what `foundation ui` and the daemon load
DAEMON_HEARTBEAT_SECONDS = 60  # a backfill daemon heard from within this is taken as running
# Runs this process executes itself: steps in process (no subprocess per step), Dagster's logs kept in the instance.
IN_PROCESS_RUN_CONFIG = {
    "execution": {"config": {"in_process": {}}},
    "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
}
TERMINAL = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}


class ReportingRunLauncher(SyncInMemoryRunLauncher):
    """Dagster's in-process launcher (each run executed at once, in this process), telling `after_run` when a run
    ends: the backfill daemon's iteration submits every partition's run in one go, and the progress bar moves with
    each one instead of jumping at the end of the iteration."""

    after_run: Callable[[], None] | None = None  # set by run_backfill for the time it runs

    def launch_run(self, context: LaunchRunContext) -> None:
        super().launch_run(context)
        if ReportingRunLauncher.after_run is not None:
            ReportingRunLauncher.after_run()


class BackfillError(ValueError):
    """The target or the dates do not designate partitions to backfill."""


@dataclass
class BackfillProgress:
    backfill_id: str
    assets: list[str]
    partitions: list[str]
    status: str = "REQUESTED"
    done: list[str] = field(default_factory=list)  # partitions every target asset materialised
    failed: list[str] = field(default_factory=list)  # partitions a target asset failed to materialise
    runs: int = 0
    executed_by: str = "in-process"  # or "daemon"

    @property
    def total(self) -> int:
        return len(self.partitions)

    @property
    def finished(self) -> bool:
        return self.status in {s.value for s in TERMINAL}

    def to_dict(self) -> dict[str, object]:
        return {
            "backfill_id": self.backfill_id,
            "status": self.status,
            "executed_by": self.executed_by,
            "assets": self.assets,
            "partitions": self.partitions,
            "done": self.done,
            "failed": self.failed,
            "runs": self.runs,
        }


def target_keys(workspace: Workspace, defs: dg.Definitions, target: str) -> list[dg.AssetKey]:
    """The partitioned assets TARGET names: a source (`uc/source` or a unique `source`), a use case (its
    partitioned assets) or an asset key (`uc/bronze/source`, `uc/marts/model`)."""
    partitioned = {
        key: asset
        for asset in defs.assets or []
        if isinstance(asset, dg.AssetsDefinition) and asset.partitions_def is not None
        for key in asset.keys
    }
    sources = workspace.sources()
    matches = [s for s in sources if target in (s.key, s.name)]
    if len(matches) > 1:
        raise BackfillError(
            f"{target!r} names sources of several use cases: write {' or '.join(s.key for s in matches)}"
        )
    if matches:
        keys = [bronze_asset_key(matches[0])]
    elif target in {s.usecase for s in sources}:
        keys = sorted((k for k in partitioned if k.path[0] == target), key=lambda k: k.to_user_string())
        if not keys:
            raise BackfillError(f"use case {target!r} has no partitioned asset: declare partitions: in a source YAML")
    else:
        keys = [dg.AssetKey(target.split("/"))]
        if keys[0] not in {k for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) for k in a.keys}:
            raise BackfillError(f"no source, use case or asset named {target!r} (see `foundation sources list`)")
    unpartitioned = [k.to_user_string() for k in keys if k not in partitioned]
    if unpartitioned:
        raise BackfillError(
            f"{', '.join(unpartitioned)} has no partitions to backfill: declare partitions: in its source YAML "
            "(docs/sources.md#partitions-and-backfills), or materialise it with foundation ingest / run"
        )
    return keys


def partition_names(
    partitions_def: dg.PartitionsDefinition, first: datetime, last: datetime, now: datetime | None = None
) -> list[str]:
    """Partitions whose window starts from `first` to `last` (a date means its whole day), up to now."""
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        raise BackfillError("only time partitions can be backfilled by date")
    keys = partitions_def.get_partition_keys(current_time=now or datetime.now(UTC))
    chosen = []
    for key in keys:
        start = partitions_def.time_window_for_partition_key(key).start.astimezone(UTC).replace(tzinfo=None)
        if first <= start <= last:
            chosen.append(key)
    return chosen


def parse_bound(text: str, end: bool) -> datetime:
    """`2026-01-03` (a day: its start, or its last moment for --to) or `2026-01-03T05:00`."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BackfillError(f"{text!r} is not a date: write YYYY-MM-DD (or YYYY-MM-DDTHH:MM for hourly)") from None
    moment = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    if end and len(text) <= len("2026-01-03"):
        return moment + timedelta(days=1) - timedelta(microseconds=1)
    return moment


def launch_backfill(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    keys: Sequence[dg.AssetKey],
    partitions: Sequence[str],
    tags: dict[str, str] | None = None,
    run_config: dict[str, object] | None = None,
) -> str:
    """Add the backfill to the instance, as the UI's launch does; returns its id."""
    backfill_id = uuid.uuid4().hex[:8]
    usecases = {key.path[0] for key in keys}  # an asset key starts with its use case; the run queue limits by it
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=defs.resolve_asset_graph(),
        partition_names=list(partitions),
        asset_selection=list(keys),
        backfill_timestamp=time.time(),
        tags={
            "foundation/command": "backfill",
            **usecase_tags(usecases.pop() if len(usecases) == 1 else None),
            **(tags or {}),
        },
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=run_config,
    )
    instance.add_backfill(backfill)
    return backfill_id


def daemon_is_running(instance: dg.DagsterInstance) -> bool:
    """A backfill daemon has sent a heartbeat to this instance recently."""
    heartbeats = instance.get_daemon_heartbeats()
    beat = heartbeats.get("BACKFILL")
    return beat is not None and time.time() - beat.timestamp < DAEMON_HEARTBEAT_SECONDS


def in_process_instance(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The same storage, with runs submitted at once and executed in this process, one after the other."""
    ref: InstanceRef = instance.get_ref()
    ref = ref._replace(
        run_coordinator_data=ConfigurableClassData(
            "dagster._core.run_coordinator.default_run_coordinator", "DefaultRunCoordinator", "{}"
        ),
        run_launcher_data=ConfigurableClassData(__name__, ReportingRunLauncher.__name__, "{}"),
    )
    return dg.DagsterInstance.from_ref(ref)


def progress_of(instance: dg.DagsterInstance, backfill_id: str, executed_by: str) -> BackfillProgress:
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise BackfillError(f"no backfill {backfill_id} on this instance")
    data = backfill.asset_backfill_data
    assets = [k.to_user_string() for k in backfill.asset_selection]
    progress = BackfillProgress(backfill_id, assets, [], status=backfill.status.value, executed_by=executed_by)
    if data is not None:

        def pairs(subset: object) -> set[tuple[dg.AssetKey, str]]:
            return {(p.asset_key, str(p.partition_key)) for p in subset.iterate_asset_partitions()}  # type: ignore[attr-defined]

        target, done = pairs(data.target_subset), pairs(data.materialized_subset)
        keys = {key for key, _ in target}
        progress.partitions = sorted({partition for _, partition in target})
        progress.done = [p for p in progress.partitions if all((k, p) in done for k in keys)]
        progress.failed = sorted({partition for _, partition in pairs(data.failed_and_downstream_subset)})
    runs = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
    progress.runs = len(runs)
    if not progress.finished:
        # The backfill's own record is updated once per daemon iteration; its runs tell sooner how far it is.
        succeeded = {r.tags.get(PARTITION_NAME_TAG) for r in runs if r.status == dg.DagsterRunStatus.SUCCESS}
        failed = {r.tags.get(PARTITION_NAME_TAG) for r in runs if r.status == dg.DagsterRunStatus.FAILURE}
        progress.done = sorted(set(progress.done) | {p for p in succeeded - failed if p in progress.partitions})
        progress.failed = sorted(set(progress.failed) | {p for p in failed if p in progress.partitions})
    return progress


def run_backfill(
    workspace: Workspace,
    instance: dg.DagsterInstance,
    backfill_id: str,
    on_progress: Callable[[BackfillProgress], None] | None = None,
    poll_seconds: float = 1.0,
    timeout_seconds: float | None = None,
) -> BackfillProgress:
    """Watch the backfill until it is done (a daemon's: or until `timeout_seconds`); run it here when no daemon
    does."""
    started = time.monotonic()
    if daemon_is_running(instance):
        while True:
            progress = progress_of(instance, backfill_id, "daemon")
            if on_progress:
                on_progress(progress)
            if progress.finished or (timeout_seconds and time.monotonic() - started > timeout_seconds):
                return progress
            time.sleep(poll_seconds)
    local = in_process_instance(instance)
    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(module_name=DEFS_MODULE, working_directory=str(workspace.root)),
        location_name="foundation",
    )
    logger = logging.getLogger("foundation.backfill")

    def report() -> BackfillProgress:
        progress = progress_of(local, backfill_id, "in-process")
        if on_progress:
            on_progress(progress)
        return progress

    ReportingRunLauncher.after_run = report
    # Runs rebuild the definitions from DEFS_MODULE, which reads the workspace from the environment: this one's.
    previous_env = os.environ.get(WORKSPACE_ENV)
    os.environ[WORKSPACE_ENV] = str(workspace.root)
    sys.modules.pop(DEFS_MODULE, None)
    try:
        with warnings.catch_warnings(), WorkspaceProcessContext(local, InProcessWorkspaceLoadTarget(origin)) as context:
            # Runs execute inside the daemon iteration's event loop; its never-awaited shutdown coroutine is noise.
            warnings.simplefilter("ignore", RuntimeWarning)
            while True:
                for error in execute_backfill_iteration(context, logger):
                    if error is not None:
                        logger.warning("backfill iteration: %s", error.message)
                progress = report()
                if progress.finished:  # no timeout here: an iteration runs every run it submitted anyway
                    return progress
    finally:
        ReportingRunLauncher.after_run = None
        if previous_env is None:
            os.environ.pop(WORKSPACE_ENV, None)
        else:
            os.environ[WORKSPACE_ENV] = previous_env
