"""`foundation_maintenance`: `foundation maintenance` as a Dagster job, on the cron of `maintenance.schedule`.

Only when the schedule is set (it is off by default): then the daemon compacts and vacuums the lakehouse by itself,
and each run's page shows the per-table report. A table that fails fails the run (after the others are done).
"""

# No `from __future__ import annotations` here: Dagster reads the op's annotations at runtime.

from pathlib import Path

import dagster as dg

from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.maintenance import run_maintenance

JOB_NAME = "foundation_maintenance"


def maintenance_job(workspace_dir: str) -> dg.JobDefinition:
    @dg.op(name="compact_and_vacuum", description="Compact and vacuum every Delta table of the lakehouse.")
    def compact_and_vacuum(context: dg.OpExecutionContext) -> dg.Output[dict]:
        workspace = Workspace.open(Path(workspace_dir))
        settings = workspace.settings
        report = run_maintenance(
            workspace.lakehouse_root,
            settings.maintenance,
            storage_options=settings.lakehouse.storage_options or None,
            progress=lambda table, step: context.log.info(f"{step} {table}"),
        )
        summary = report.to_dict()
        metadata = {
            **{k: dg.MetadataValue.int(v) for k, v in report.totals().items()},
            "tables": dg.MetadataValue.md(_markdown(summary)),
        }
        if not report.ok:
            failed = [t for t in report.tables if t.status == "failed"]
            raise dg.Failure(
                description="; ".join(f"{t.table}: {'; '.join(t.notes)}" for t in failed), metadata=metadata
            )
        return dg.Output(summary["totals"], metadata=metadata)

    @dg.job(name=JOB_NAME, description="Compaction and vacuum of the lakehouse (docs/operations.md, Maintenance).")
    def foundation_maintenance() -> None:
        compact_and_vacuum()

    return foundation_maintenance


def _markdown(summary: dict) -> str:
    header = "| table | files before | files after | compacted | removed | bytes reclaimed | status |"
    lines = [header, "|---" * 7 + "|"]
    for t in summary["tables"]:
        lines.append(
            f"| {t['table']} | {t['files_before']} | {t['files_after']} | {t['files_compacted']} | "
            f"{t['files_removed']} | {t['bytes_reclaimed']} | {t['status']} |"
        )
    return "\n".join(lines)


def maintenance_schedules(workspace: Workspace) -> list[dg.ScheduleDefinition]:
    """The maintenance job on `maintenance.schedule` (RUNNING: the daemon alone runs it); none when unset."""
    cron = workspace.settings.maintenance.schedule
    if not cron:
        return []
    return [
        dg.ScheduleDefinition(
            name=f"{JOB_NAME}__schedule",
            cron_schedule=cron,
            job=maintenance_job(str(workspace.root)),
            description="maintenance.schedule of foundation.yaml",
            default_status=dg.DefaultScheduleStatus.RUNNING,
        )
    ]
