"""Land some sources in bronze now: their Dagster assets materialised in process, and what each load reported.

`foundation ingest`, the demo and the tests call `run_ingest`; the CLI only prints the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from foundation.core.gc_tuning import freeze_heap_for_exit, quiet_garbage_collector
from foundation.core.workspace import SourceRef, Workspace
from foundation.dagster_defs.definitions import bronze_asset_key, ingestion_definitions, load_reports
from foundation.dagster_defs.instance import dagster_instance
from foundation.dagster_defs.resources import LOAD_PROGRESS, LoadProgress, NoProgress
from foundation.engine.ingest.report import LoadReport

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
        self.reports, self.errors = load_reports(result)


def skip_partitioned(result: IngestResult, sources: list[SourceRef]) -> None:
    """Partitioned sources are loaded per partition (their schedule, the UI, foundation backfill), not whole."""
    for source in sources:
        if source.spec.partitions is not None:
            result.skipped[source.key] = (
                f"{source.spec.partitions.by} partitions: foundation backfill {source.key} --from DATE --to DATE"
            )


def run_ingest(workspace: Workspace, sources: list[SourceRef], progress: LoadProgress | None = None) -> IngestResult:
    """Materialise the bronze assets of `sources` through Dagster; returns what each load reported. `progress` (the
    CLI's bar) hears rows as they are read."""
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
