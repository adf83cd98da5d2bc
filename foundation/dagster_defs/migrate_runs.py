"""Move a workspace's Dagster run history from its SQLite instance to PostgreSQL (`foundation migrate dagster`).

Dagster has no such command (`dagster instance migrate` upgrades one storage's schema in place), so the history is
copied through Dagster's own storage API: for every run, oldest first, its job and execution-plan snapshots, its
events (materialisations, check evaluations, step events: the asset catalogue is rebuilt from them), then the run
itself; then the events recorded outside runs (`report_runless_asset_event`: promotions, for example).

A run counts as copied once the run row exists in the target, and that row is written last: an interrupted migration
is run again, and a run left half-copied has its events deleted and copied anew, so nothing is doubled.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.core.workspace import Workspace
from foundation.dagster_defs.instance import dagster_home, render_instance_yaml

RUNLESS_RUN_ID = ""  # dagster._core.instance.utils.RUNLESS_RUN_ID: events recorded outside any run


@dataclass(frozen=True)
class RunMigration:
    runs: int  # runs copied by this call
    already: int  # runs the target already held
    events: int

    def to_dict(self) -> dict[str, int]:
        return {"runs": self.runs, "already": self.already, "events": self.events}


def postgres_instance(folder: Path) -> Any:
    """A Dagster instance on PostgreSQL from the DAGSTER_PG_* variables (the same dagster.yaml foundation deploys)."""
    import dagster as dg  # lazy: dagster (1 s), not for --help

    (folder / "dagster.yaml").write_text(render_instance_yaml("postgres"), encoding="utf-8")
    return dg.DagsterInstance.from_config(str(folder))


def copy_run(source: Any, target: Any, run: Any) -> int:
    """One run's snapshots and events, then the run row (last: it marks the run as copied); returns the events."""
    for snapshot_id, has, get in (
        (run.job_snapshot_id, target.run_storage.has_job_snapshot, source.run_storage.get_job_snapshot),
        (
            run.execution_plan_snapshot_id,
            target.run_storage.has_execution_plan_snapshot,
            source.run_storage.get_execution_plan_snapshot,
        ),
    ):
        if snapshot_id and not has(snapshot_id):
            target.add_snapshot(get(snapshot_id))
    target.event_log_storage.delete_events(run.run_id)  # a run left half-copied by an interrupted migration
    events = source.all_logs(run.run_id)
    for event in events:
        target.event_log_storage.store_event(event)
    target.run_storage.add_run(run)
    return len(events)


def migrate_run_history(source: Any, target: Any) -> RunMigration:
    """Every run of `source` not yet in `target`, oldest first, then the events recorded outside runs."""
    copied = already = events = 0
    for run in reversed(source.get_runs()):
        if target.has_run(run.run_id):
            already += 1
            continue
        events += copy_run(source, target, run)
        copied += 1
    if copied:  # outside runs: copied whole, with the first migration that copies runs
        target.event_log_storage.delete_events(RUNLESS_RUN_ID)
        runless = source.all_logs(RUNLESS_RUN_ID)
        for event in runless:
            target.event_log_storage.store_event(event)
        events += len(runless)
    return RunMigration(runs=copied, already=already, events=events)


def migrate_workspace_runs(workspace: Workspace) -> RunMigration:
    """The workspace's SQLite instance (under its state folder) -> the PostgreSQL of the DAGSTER_PG_* variables."""
    import dagster as dg  # lazy: as above

    home = dagster_home(workspace)
    if not (home / "dagster.yaml").is_file():
        raise FileNotFoundError(f"{home}: no Dagster instance here yet (nothing to migrate)")
    source = dg.DagsterInstance.from_config(str(home))
    with tempfile.TemporaryDirectory(prefix="foundation-migrate-") as folder:
        target = postgres_instance(Path(folder))
        try:
            return migrate_run_history(source, target)
        finally:
            target.dispose()
            source.dispose()
