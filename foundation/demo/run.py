"""`foundation demo` without the printing: the shipped use case end to end on embedded defaults.

Generates the fleet's landing files, validates the workspace, lands every source in bronze through Dagster, reads
the signal to learn from bronze, then builds the dbt model and KPIs. The two steps return what each stage found;
the CLI prints it (and trains the models, `foundation train`'s stage).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from foundation.core.workspace import SourceRef, Workspace
from foundation.dagster_defs.ingest_run import IngestResult, run_ingest
from foundation.dagster_defs.pipeline_run import run_pipeline
from foundation.dagster_defs.resources import LoadProgress
from foundation.demo.fleet_data import DEMO_USECASE, FleetLanding, FleetSize, generate_fleet_landing
from foundation.demo.serve import demo_services
from foundation.engine.dbt.paths import dbt_paths
from foundation.engine.lakehouse.catalog import register_bronze
from foundation.platform.check import check_workspace
from foundation.specs.errors import SpecError
from kpi_catalog.catalogue import KpiCatalog

# The signal the model will learn, visible in bronze already: sensors in the 48 h before a failure vs. otherwise.
SIGNAL_SQL = """
WITH flagged AS (
    SELECT t.*, EXISTS (
        SELECT 1 FROM bronze.fleet_maintenance__failures f
        WHERE f.truck_id = t.truck_id AND f.failed_at > t.ts AND f.failed_at <= t.ts + INTERVAL 48 HOUR
    ) AS before_failure
    FROM bronze.fleet_maintenance__engine_telemetry t
)
SELECT CASE WHEN before_failure THEN '48 h before a failure' ELSE 'other hours' END AS period,
       count(*) AS readings,
       round(avg(engine_temp_c), 1) AS engine_temp_c,
       round(avg(oil_pressure_kpa), 1) AS oil_pressure_kpa,
       round(avg(vibration_mm_s), 2) AS vibration_mm_s
FROM flagged GROUP BY ALL ORDER BY period
"""


@dataclass
class DemoResult:
    """What each stage of the demo found; `model` is None without a dbt project (or when ingestion failed)."""

    started_at: float  # time.time() when the demo started
    landing: FleetLanding
    check_errors: list[SpecError] = field(default_factory=list)
    sources: list[SourceRef] = field(default_factory=list)
    ingest: IngestResult = field(default_factory=IngestResult)
    signal: list[tuple[Any, ...]] = field(default_factory=list)
    model: dict[str, Any] | None = None

    @property
    def ingested(self) -> bool:
        """Every source landed, no error, no failed error check."""
        ingest = self.ingest
        landed = all(s.key in ingest.reports for s in self.sources)
        return not self.check_errors and not ingest.errors and landed and not ingest.failed_checks()

    @property
    def ok(self) -> bool:
        return self.ingested and (self.model is None or self.model["ok"])


def run_demo_ingestion(
    workspace: Workspace,
    size: FleetSize,
    say: Callable[[str], None] = lambda _: None,
    progress: LoadProgress | None = None,
) -> DemoResult:
    """Landing files, check, ingestion (then `run_demo_model` when `ingested`); `say` hears each step."""
    started_at = time.time()
    landing_root = workspace.root / "landing" / DEMO_USECASE
    say(f"1/3 generating landing files ({size.trucks} trucks x {size.days} days, seed {size.seed}) in {landing_root}")
    result = DemoResult(started_at=started_at, landing=generate_fleet_landing(landing_root, size))
    result.check_errors = [e for e in check_workspace(workspace) if e.severity == "error"]
    if result.check_errors:
        return result
    say(f"2/3 check: {len(workspace.scan.sources)} sources valid")
    say("3/3 ingesting every source into the bronze lakehouse (Dagster, in process)")
    result.sources = workspace.sources()
    # maintenance and failures come from the workshop's REST API, the depot list from a local web page (html_table):
    # both up only for the length of the ingestion (`foundation demo serve` keeps them up for later runs)
    with demo_services(landing_root) as services:
        say(f"    (the workshop REST API serves maintenance and failures at {services.api_url})")
        say(f"    (the depot page is served at {services.depot_page_url})")
        result.ingest = run_ingest(workspace, result.sources, progress)
    return result


def run_demo_model(workspace: Workspace) -> tuple[list[tuple[Any, ...]], dict[str, Any] | None]:
    """The signal to learn, read from bronze; then the dbt data model and KPIs (None without a dbt project)."""
    con = duckdb.connect()
    register_bronze(con, workspace.lakehouse_root)
    return con.execute(SIGNAL_SQL).fetchall(), model_stage(workspace)


def model_stage(workspace: Workspace) -> dict[str, Any] | None:
    """dbt build + gold snapshots from what bronze holds now, then the demo KPIs; None without a dbt project."""
    if not dbt_paths(workspace).exists():
        return None
    summary = run_pipeline(workspace, skip_ingestion=True)
    catalog = KpiCatalog.of(workspace)
    kpis = [catalog.summary(k) for k in catalog.ids()]
    return {"ok": summary.ok, "summary": summary.to_dict(), "kpis": kpis}
