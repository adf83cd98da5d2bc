"""Build the Dagster `Definitions` of a workspace from its YAML (thin YAML, thick factory).

Asset keys: `<usecase>/bronze/<source>`; group = use case; owners, kinds and description from the YAML.
"""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations at runtime.

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from croniter import croniter

from foundation.core.workspace import SourceRef, Workspace
from foundation.dagster_defs.instance import usecase_tags
from foundation.dagster_defs.keys import bronze_asset_key
from foundation.dagster_defs.partitions import partition_window, partitioned_schedule, partitions_definition
from foundation.dagster_defs.resources import LOAD_PROGRESS, FoundationResource, LoadProgress, NoProgress
from foundation.engine.ingest.report import LoadReport
from foundation.engine.quality.checks import declared_checks
from foundation.specs.rules import FreshnessRule, parse_duration
from foundation.specs.source import SourceSpec
from foundation.specs.source import referenced_sources as referenced_sources_of

if TYPE_CHECKING:  # foundation.engine.dbt is imported only by the commands that build dbt assets
    from foundation.engine.dbt.paths import DbtPaths


def _preview_markdown(report: LoadReport) -> str:
    if not report.preview:
        return "_no rows landed in this load_"
    columns = list(report.preview[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in report.preview:
        lines.append("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


REPORT_KEY = "foundation/load_report"  # a load's whole report, returned to the caller of the run (load_reports)
SOURCE_KEY, ERROR_KEY = "foundation/source", "foundation/error"  # on a failed load's step failure


def load_reports(result: dg.ExecuteInProcessResult) -> tuple[dict[str, LoadReport], dict[str, str]]:
    """What each load of an in-process run returned: its report by source, or its error by source."""
    reports = {}
    for event in result.get_asset_materialization_events():
        value = event.materialization.metadata.get(REPORT_KEY)
        if value is not None:
            report = LoadReport.from_dict(value.value)  # type: ignore[arg-type]
            reports[report.source] = report
    errors = {}
    for event in result.get_step_failure_events():
        failure = event.step_failure_data.user_failure_data
        if failure is not None and SOURCE_KEY in failure.metadata:
            errors[str(failure.metadata[SOURCE_KEY].value)] = str(failure.metadata[ERROR_KEY].value)
    return reports, errors


def materialization_metadata(report: LoadReport, uri: str) -> dict[str, object]:
    schema = dg.TableSchema(columns=[dg.TableColumn(name=n, type=t) for n, t in report.schema])
    metadata: dict[str, object] = {
        "load_id": report.load_id,
        "status": report.status,
        "rows_read": report.rows_read,
        "rows_landed": report.rows_landed,
        "rows_quarantined": report.rows_quarantined,
        "rows_dropped": report.rows_dropped,
        "rows_stale": report.rows_stale,
        "rows_superseded": report.rows_superseded,
        "rows_reconcile": report.reconciles,
        "files_loaded": report.files_loaded,
        "delta_version": report.delta_version,
        "seconds": round(report.seconds, 3),
        "dagster/uri": uri,
        "preview": dg.MetadataValue.md(_preview_markdown(report)),
        REPORT_KEY: dg.MetadataValue.json(json.loads(json.dumps(report.to_dict(), default=str))),
    }
    if report.schema:
        metadata["dagster/column_schema"] = schema
    if report.rows_total is not None:
        metadata["dagster/row_count"] = report.rows_total
    if report.invalid_reasons:
        metadata["invalid_reasons"] = dg.MetadataValue.json(report.invalid_reasons)
    return {k: v for k, v in metadata.items() if v is not None}


def check_specs(source: SourceRef) -> list[dg.AssetCheckSpec]:
    """One Dagster asset check per declared rule; `error` checks block downstream assets."""
    return [
        dg.AssetCheckSpec(
            check.name,
            asset=bronze_asset_key(source),
            description=check.description,
            blocking=check.blocking,
            metadata={"stage": check.stage, "severity": check.severity},
        )
        for check in declared_checks(source.spec)
    ]


def check_result(outcome: dict[str, Any]) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity.ERROR if outcome["severity"] == "error" else dg.AssetCheckSeverity.WARN
    metadata: dict[str, Any] = {"failing": outcome["failing"], "stage": outcome["stage"]}
    if outcome["observed"]:
        metadata["observed"] = outcome["observed"]
    if outcome["sample"]:
        metadata["sample"] = dg.MetadataValue.json(outcome["sample"])
    return dg.AssetCheckResult(
        check_name=outcome["check"], passed=outcome["passed"], severity=severity, metadata=metadata
    )


def freshness_policy(spec: SourceSpec) -> dg.FreshnessPolicy | None:
    """From an explicit last-load freshness rule, else from the schedule: warn after one period, fail after two."""
    explicit = next(
        (r.freshness for r in spec.checks if isinstance(r, FreshnessRule) and r.freshness.column is None), None
    )
    if explicit is not None:
        warn = parse_duration(explicit.warn_after) if explicit.warn_after else None
        fail = parse_duration(explicit.error_after) if explicit.error_after else None
        if fail is None:
            return None
        return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn if warn and warn < fail else None)
    if spec.schedule == "manual":
        return None
    start = datetime(2026, 1, 5, tzinfo=UTC)  # any fixed Monday: only the spacing between runs matters
    runs = croniter(spec.schedule, start)
    times = [runs.get_next(datetime) for _ in range(15)]
    period = max(b - a for a, b in itertools.pairwise(times))  # the longest gap: weekday crons skip weekends
    grace = min(timedelta(minutes=10), period)
    return dg.FreshnessPolicy.time_window(fail_window=2 * period + grace, warn_window=period + grace)


def referenced_sources(source: SourceRef) -> list[dg.AssetKey]:
    """Sources a `references` rule reads: loaded first, so the rule sees their current data."""
    upstream = referenced_sources_of(source.usecase, source.spec)
    return [dg.AssetKey([usecase, "bronze", name]) for usecase, name in upstream]


def source_asset(workspace: Workspace, source: SourceRef) -> dg.AssetsDefinition:
    spec = source.spec
    uri = workspace.bronze_uri(source.usecase, source.name)

    @dg.asset(
        key=bronze_asset_key(source),
        group_name=source.usecase,
        owners=[spec.owner],
        kinds={spec.extract.type, "delta"},
        description=spec.description,
        tags={"layer": "bronze", **{tag: "" for tag in spec.tags}},
        metadata={
            "source_yaml": str(source.path.relative_to(workspace.root)),
            "schedule": spec.schedule,
            "load_mode": spec.load.mode,
            "primary_key": ", ".join(spec.load.primary_key) or "-",
            "dagster/uri": uri,
        },
        check_specs=check_specs(source),
        deps=referenced_sources(source),
        freshness_policy=freshness_policy(spec),
        partitions_def=partitions_definition(spec.partitions),
    )
    def _ingest(
        context: dg.AssetExecutionContext, foundation: FoundationResource, load_progress: dg.ResourceParam[LoadProgress]
    ) -> Iterator[Any]:
        window = partition_window(context) if context.has_partition_key else None
        attempt = foundation.ingest(source.key, window, load_progress)
        if attempt.error is not None:
            # A refused load is a failed check too: show what the rules concluded, then fail the step.
            for outcome in attempt.outcomes:
                yield check_result(outcome.to_dict())
            failure = {SOURCE_KEY: source.key, ERROR_KEY: str(attempt.error)}
            raise dg.Failure(description=f"{source.key}: {attempt.error}", metadata=failure) from attempt.error
        report = attempt.report_or_raise()
        context.log.info(
            f"{source.key}: read {report.rows_read}, landed {report.rows_landed}, "
            f"quarantined {report.rows_quarantined} ({report.status})"
        )
        yield dg.MaterializeResult(
            metadata=materialization_metadata(report, uri),
            check_results=[check_result(o) for o in report.checks],
        )

    return _ingest


def source_schedule(source: SourceRef) -> dg.ScheduleDefinition | None:
    if source.spec.schedule == "manual":
        return None
    if source.spec.partitions is not None:
        return partitioned_schedule(source, bronze_asset_key(source))
    return dg.ScheduleDefinition(
        name=f"{source.usecase}__{source.name}__schedule",
        cron_schedule=source.spec.schedule,
        target=dg.AssetSelection.assets(bronze_asset_key(source)),
        description=f"Refresh plan of {source.key} (from {source.path.name})",
        default_status=dg.DefaultScheduleStatus.RUNNING,  # the daemon alone runs the platform (docs/automation.md)
        tags=usecase_tags(source.usecase),  # the run queue's per-use-case limit applies to its runs
    )


def ingestion_definitions(workspace: Workspace) -> dg.Definitions:
    """Only the ingestion assets and their schedules: what `foundation ingest` runs. Importing dbt and MLflow
    for those would cost seconds per command, so they stay out."""
    sources = workspace.sources()
    return dg.Definitions(
        assets=[source_asset(workspace, src) for src in sources],
        schedules=[s for s in (source_schedule(src) for src in sources) if s is not None],
        resources={"foundation": FoundationResource(workspace_dir=str(workspace.root)), LOAD_PROGRESS: NoProgress()},
    )


def build_definitions(
    workspace_dir: Path | None = None, workspace: Workspace | None = None, prepared_dbt: "DbtPaths | None" = None
) -> dg.Definitions:
    """All definitions of the workspace; raises with every spec error if a YAML is invalid.

    `workspace` reuses an open workspace (its YAML already scanned); `prepared_dbt` (the `DbtPaths` that
    `prepare_project` just returned) skips preparing the dbt project a second time in the same command."""
    workspace = workspace if workspace is not None else Workspace.open(workspace_dir)
    ingestion = ingestion_definitions(workspace)
    # dbt models downstream of the ingestion assets (none when the workspace has no dbt project)
    # lazy (this and the imports below): dagster-dbt, the dbt engine and the ML modules load only with the full
    # definitions; `foundation ingest` builds the ingestion definitions alone
    from foundation.dagster_defs.dbt_assets import dbt_definitions

    dbt_assets, dbt_resources = dbt_definitions(workspace, prepared_dbt)
    # model specs (usecases/<uc>/ml/*.yaml): training, batch predictions, monitoring, downstream of gold
    from foundation.dagster_defs.ml_assets import ml_definitions

    ml_assets, ml_schedules, ml_sensors = ml_definitions(workspace)
    # what the daemon runs by itself: assets' automation conditions, sources' new-files sensors
    from foundation.dagster_defs.alert_sensors import alert_sensors  # notifications: (docs/operations.md#alerts)
    from foundation.dagster_defs.automation import automation_sensors
    from foundation.dagster_defs.file_sensors import file_arrival_sensors
    from foundation.dagster_defs.maintenance_job import maintenance_schedules  # maintenance.schedule

    assets = [*(ingestion.assets or []), *dbt_assets, *ml_assets]
    usecases = {spec.group_name for asset in assets for spec in asset.specs if spec.group_name}
    return dg.Definitions(
        assets=assets,
        schedules=[*(ingestion.schedules or []), *ml_schedules, *maintenance_schedules(workspace)],
        sensors=[
            *ml_sensors,
            *automation_sensors(workspace, usecases),
            *file_arrival_sensors(workspace),
            *alert_sensors(workspace),
        ],
        resources={**(ingestion.resources or {}), **dbt_resources},
    )
