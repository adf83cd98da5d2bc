"""Land some sources in bronze now, and what each load reported.

Two ways, one result (`IngestResult`; the CLI only prints it):
- `ingest_now` (`foundation ingest`): each load runs in this process outside any Dagster run, then its
  materialisation and its rules' check evaluations are reported to the instance (`report_runless_asset_event`), so
  the UI shows them as it shows a run's. No run is created, no definitions are built, and Dagster is imported after
  the last load: the first row is read 0.5 s after start-up instead of 2 s. A failed load is printed and exits 1;
  it opens no run-failure incident (scheduled and sensor-started loads are Dagster runs: they do).
- `run_ingest` (the demo, `foundation run`'s tests): the bronze assets materialised in a Dagster run in process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from foundation.core.gc_tuning import freeze_heap_for_exit, quiet_garbage_collector
from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.ingest.report import LoadReport
from foundation.engine.ingest.runner import LoadAttempt, attempt_source
from foundation.specs.source import referenced_sources

if TYPE_CHECKING:
    import dagster as dg

    from foundation.dagster_defs.resources import LoadProgress

# Our own table reports every outcome and error; the full Dagster logs stay in the instance (`foundation ui`).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class IngestResult:
    """What the loads of one run returned, per source key."""

    reports: dict[str, LoadReport] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # source -> why it was not loaded (partitioned: by partition)

    def failed_checks(self) -> list[str]:
        """`source: check` of every error check that failed (Dagster blocks what depends on them)."""
        return [
            f"{report.source}: {check['check']}"
            for report in self.reports.values()
            for check in report.checks
            if check["status"] == "fail"
        ]

    def ok(self, sources: list[SourceRef]) -> bool:
        """Every source loaded or skipped on purpose, no error, no failed error check."""
        not_run = [s for s in sources if s.key not in self.reports and s.key not in self.skipped]
        return not (self.errors or not_run or self.failed_checks())

    def record(self, result: dg.ExecuteInProcessResult) -> None:
        """The reports and errors the run returned."""
        from foundation.dagster_defs.definitions import load_reports  # lazy: dagster, after the loads

        self.reports, self.errors = load_reports(result)


def skip_partitioned(result: IngestResult, sources: list[SourceRef]) -> None:
    """Partitioned sources are loaded per partition (their schedule, the UI, foundation backfill), not whole."""
    for source in sources:
        if source.spec.partitions is not None:
            result.skipped[source.key] = (
                f"{source.spec.partitions.by} partitions: foundation backfill {source.key} --from DATE --to DATE"
            )


def ingest_now(workspace: Workspace, sources: list[SourceRef], progress: LoadProgress | None = None) -> IngestResult:
    """Load `sources` in this process outside a Dagster run, then report each load to the Dagster instance (a
    materialisation for a load that landed, its check evaluations either way). `progress` hears rows as read."""
    ingest = IngestResult()
    skip_partitioned(ingest, sources)
    quiet_garbage_collector()
    attempts: list[tuple[SourceRef, LoadAttempt]] = []
    for source in in_reference_order(sources):
        if source.spec.partitions is None:
            attempts.append((source, _attempt(workspace, source, progress)))
    for source, attempt in attempts:
        if attempt.error is not None:
            ingest.errors[source.key] = str(attempt.error)
        else:
            ingest.reports[source.key] = attempt.report_or_raise()
    if attempts:
        report_to_instance(workspace, attempts)
    freeze_heap_for_exit()
    return ingest


def in_reference_order(sources: list[SourceRef]) -> list[SourceRef]:
    """`sources` with each one after the sources its `references` rules read (as a Dagster run orders them),
    otherwise in the order given."""
    by_key = {source.key: source for source in sources}
    graph = {
        source.key: [f"{uc}/{name}" for uc, name in referenced_sources(source.usecase, source.spec)]
        for source in sources
    }
    ordered: list[SourceRef] = []

    def visit(key: str, seen: set[str]) -> None:
        if key not in by_key or by_key[key] in ordered or key in seen:  # not selected, done, or a cycle
            return
        for upstream in graph[key]:
            visit(upstream, seen | {key})
        ordered.append(by_key[key])

    for source in sources:
        visit(source.key, set())
    return ordered


def _attempt(workspace: Workspace, source: SourceRef, progress: LoadProgress | None) -> LoadAttempt:
    on_rows: Callable[[int], None] | None = None
    if progress is not None:
        progress.on_start(source.key)
        on_rows = lambda rows: progress.on_rows(source.key, rows)  # noqa: E731
    try:
        attempt = attempt_source(workspace, source, on_rows)
    except Exception as exc:  # raised before the load began (a partitioned source...): reported like a failure
        attempt = LoadAttempt(report=None, error=exc, outcomes=[])
    if progress is not None:
        if attempt.report is not None:
            progress.on_rows(source.key, attempt.report.rows_read)
        progress.on_end(source.key, failed=attempt.error is not None)
    return attempt


def report_to_instance(workspace: Workspace, attempts: list[tuple[SourceRef, LoadAttempt]]) -> None:
    """Each load's materialisation (when it landed) and check evaluations, as runless events of the instance."""
    import dagster as dg  # lazy: imported after the loads, so that the first row does not wait for it

    from foundation.dagster_defs.definitions import bronze_asset_key, check_result, materialization_metadata  # lazy
    from foundation.dagster_defs.instance import dagster_instance  # lazy: dagster

    instance = dagster_instance(workspace)
    for source, attempt in attempts:
        key = bronze_asset_key(source)
        if attempt.report is not None:
            uri = workspace.bronze_uri(source.usecase, source.name)
            metadata = materialization_metadata(attempt.report, uri)
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, metadata=metadata))
        outcomes = attempt.report.checks if attempt.report is not None else [o.to_dict() for o in attempt.outcomes]
        for outcome in outcomes:
            result = check_result(outcome)
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(
                    asset_key=key,
                    check_name=outcome["check"],
                    passed=result.passed,
                    metadata=result.metadata,
                    severity=result.severity,
                )
            )


def run_ingest(workspace: Workspace, sources: list[SourceRef], progress: LoadProgress | None = None) -> IngestResult:
    """Materialise the bronze assets of `sources` through Dagster; returns what each load reported. `progress` (the
    CLI's bar) hears rows as they are read."""
    import dagster as dg  # lazy: `foundation ingest` (ingest_now) imports dagster after its loads

    from foundation.dagster_defs.definitions import bronze_asset_key, ingestion_definitions  # lazy: as above
    from foundation.dagster_defs.instance import dagster_instance  # lazy: as above
    from foundation.dagster_defs.resources import LOAD_PROGRESS, NoProgress  # lazy: as above

    defs = ingestion_definitions(workspace)
    selection = [bronze_asset_key(s) for s in sources if s.spec.partitions is None]
    ingest = IngestResult()
    skip_partitioned(ingest, sources)
    if not selection:
        return ingest
    quiet_garbage_collector()
    result = dg.materialize(
        list(defs.assets or []),
        selection=selection,
        instance=dagster_instance(workspace),
        resources={**(defs.resources or {}), LOAD_PROGRESS: progress or NoProgress()},
        run_config=QUIET_RUN_CONFIG,
        raise_on_error=False,
        tags={"foundation/command": "ingest"},
    )
    ingest.record(result)
    freeze_heap_for_exit()
    return ingest
