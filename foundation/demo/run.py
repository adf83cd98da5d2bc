"""`foundation demo`: the shipped use case end to end on embedded defaults.

Generates the fleet's landing files, validates the workspace, lands every source in bronze through Dagster,
and shows what landed. Later stages (dbt, training, serving) hook in here as they are built.
"""

from __future__ import annotations

import time

import duckdb

from foundation.cli.ingest_command import print_reports, run_ingest
from foundation.cli.output import console, err_console, print_json, print_table
from foundation.cli.run_command import model_stage, print_model_stage
from foundation.core.workspace import Workspace
from foundation.demo.fleet_data import FleetSize, generate_fleet_landing
from foundation.demo.serve import demo_services
from foundation.engine.lakehouse.catalog import register_bronze
from foundation.platform.check import check_workspace

DEMO_USECASE = "fleet_maintenance"

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


def run_demo(workspace: Workspace, trucks: int, days: int, seed: int, json_output: bool = False) -> bool:
    started = time.perf_counter()
    landing_root = workspace.root / "landing" / DEMO_USECASE
    size = FleetSize(trucks=trucks, days=days, seed=seed)
    if not json_output:
        console.rule("[bold]Data Foundation demo: fleet_maintenance")
        console.print(f"1/3 generating landing files ({trucks} trucks x {days} days, seed {seed}) in {landing_root}")
    landing = generate_fleet_landing(landing_root, size)

    errors = [e for e in check_workspace(workspace) if e.severity == "error"]
    if errors:
        for error in errors:
            err_console.print(error.format(relative_to=workspace.root))
        return False
    if not json_output:
        console.print(f"2/3 check: {len(workspace.scan.sources)} sources valid")
        console.print("3/3 ingesting every source into the bronze lakehouse (Dagster, in process)")
    sources = workspace.sources()
    # maintenance and failures come from the workshop's REST API, the depot list from a local web page (html_table):
    # both up only for the length of the ingestion (`foundation demo serve` keeps them up for later runs)
    with demo_services(landing_root) as services:
        if not json_output:
            console.print(f"    (the workshop REST API serves maintenance and failures at {services.api_url})")
            console.print(f"    (the depot page is served at {services.depot_page_url})")
        listener = run_ingest(workspace, sources, show_progress=not json_output)
    ok = not listener.errors and all(s.key in listener.reports for s in sources) and not listener.failed_checks()
    con = duckdb.connect()
    register_bronze(con, workspace.lakehouse_root)
    signal = con.execute(SIGNAL_SQL).fetchall() if ok else []
    model = model_stage(workspace) if ok else None  # dbt data model + KPIs (None without a dbt project)
    ok = ok and (model is None or model["ok"])
    from foundation.cli.ml_command import print_train_stage, train_stage

    trained = model["summary"]["training"] if model is not None else {}  # the models `model_stage`'s run trained
    training = train_stage(workspace, DEMO_USECASE, trained) if ok and model is not None else None  # ml/*.yaml
    ok = ok and (training is None or training["ok"])
    if json_output:
        print_json(
            {
                "ok": ok,
                "landing_rows": landing.rows,
                "landing_bad_rows": landing.bad_rows,
                "landing_glitch_rows": landing.glitch_rows,
                "reports": [r.to_dict() for r in listener.reports.values()],
                "errors": {k: str(v) for k, v in listener.errors.items()},
                "signal": [list(row) for row in signal],
                "model": model,
                "training": training,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
        return ok
    print_reports(workspace, listener, sources)
    if signal:
        print_table(
            "The signal to learn: sensors before failures (from bronze, via DuckDB)",
            ["period", "readings", "engine °C", "oil kPa", "vibration mm/s"],
            signal,
            right=["readings", "engine °C", "oil kPa", "vibration mm/s"],
        )
    if signal:
        print_model_stage(workspace, model)
    if model is not None and model["ok"]:
        print_train_stage(training)
    console.print(
        f"{'[green]done' if ok else '[red]failed'}[/] in {time.perf_counter() - started:.1f}s. Next: "
        "`foundation ui` (asset graph), `foundation sources list`, "
        '`foundation sql "select * from bronze.fleet_maintenance__engine_telemetry limit 5"`, '
        "`foundation demo serve` (the REST API and web page, for `foundation run` later)"
    )
    return ok
