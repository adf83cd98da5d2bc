"""Benchmark: `foundation run` (ingestion, checks, dbt, gold) against `dbt build` run directly, in one run.

Run from the repository root::

    .venv/bin/python bench/dbt_build.py                          # 100 and 2,000 trucks x 365 days of hourly telemetry
    .venv/bin/python bench/dbt_build.py --sizes 100x365,500x365  # other fleet sizes (trucks x days)

For each size it generates the demo's landing files once (cached under --workdir), then, on a fresh workspace:

(a) `foundation run --json`, timed from outside: the total, split by the run's own step timings into ingestion,
    checks, dbt (the dbt step: bronze views + `dbt build` + dagster-dbt's event handling) and publish (gold Delta
    snapshots); orchestration overhead = total - those parts (Python and Dagster start-up, definitions, the run);
(b) anchor: `dbt build` of the same project on the same warehouse, run directly (sources = the bronze views);
(c) the alternative for dbt sources: copy every bronze snapshot into a DuckDB table first, then `dbt build`
    (against (b), where sources are views over the snapshots' Parquet files).

A benchmark reports, it does not fail: exit code 0 whatever the numbers; the target line says met or missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
FOUNDATION = str(Path(PYTHON).with_name("foundation"))
DBT = str(Path(PYTHON).with_name("dbt"))
OVERHEAD_TARGET = 0.15

COPY_SOURCES = """
import sys, duckdb
from foundation.workspace import Workspace
from foundation.dbt.warehouse import bronze_view_sql, warehouse_path
ws = Workspace.open()
con = duckdb.connect(str(warehouse_path(ws)))
for s in ws.sources():
    name = f"{s.usecase}__{s.name}"
    if con.execute(f"select 1 from duckdb_views() where schema_name='bronze' and view_name='{name}'").fetchall():
        con.execute(f'DROP VIEW bronze."{name}"')
    con.execute(f'CREATE OR REPLACE TABLE bronze."{name}" AS {bronze_view_sql(ws, s)}')
con.close()
"""
VIEW_SOURCES = """
from foundation.workspace import Workspace
from foundation.dbt.warehouse import refresh_bronze_views
import duckdb
from foundation.dbt.warehouse import warehouse_path
ws = Workspace.open()
con = duckdb.connect(str(warehouse_path(ws)))
for s in ws.sources():
    name = f"{s.usecase}__{s.name}"
    if con.execute(f"select 1 from duckdb_tables() where schema_name='bronze' and table_name='{name}'").fetchall():
        con.execute(f'DROP TABLE bronze."{name}"')
con.close()
refresh_bronze_views(ws)
"""


@dataclass
class SizeResult:
    trucks: int
    days: int
    telemetry_rows: int
    total_s: float
    ingestion_s: float
    checks_s: float
    dbt_step_s: float
    publish_s: float
    overhead_s: float
    anchor_dbt_s: float
    views_then_build_s: float
    tables_then_build_s: float

    @property
    def overhead_ratio(self) -> float:
        return self.overhead_s / self.total_s

    @property
    def dbt_ratio(self) -> float:
        return self.dbt_step_s / self.anchor_dbt_s

    @property
    def source_ratio(self) -> float:
        return self.tables_then_build_s / self.views_then_build_s


def landing(workdir: Path, trucks: int, days: int) -> tuple[Path, int]:
    """The demo's landing files for a fleet size, generated once and cached (the generator is deterministic)."""
    folder = workdir / f"landing_{trucks}x{days}"
    marker = folder / "rows.json"
    if not marker.exists():
        from foundation.demo.fleet_data import FleetSize, generate_fleet_landing

        shutil.rmtree(folder, ignore_errors=True)
        generated = generate_fleet_landing(folder / "fleet_maintenance", FleetSize(trucks=trucks, days=days))
        marker.write_text(json.dumps(generated.rows))
    return folder, json.loads(marker.read_text())["telemetry"]


def workspace(workdir: Path, landing_dir: Path, trucks: int, days: int) -> Path:
    ws = workdir / f"ws_{trucks}x{days}"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    shutil.copy(REPO / "foundation.yaml", ws / "foundation.yaml")
    shutil.copytree(REPO / "usecases", ws / "usecases")
    ignore = shutil.ignore_patterns("_generated", "kpis", "target", "logs")
    shutil.copytree(REPO / "dbt_project", ws / "dbt_project", ignore=ignore)
    (ws / "landing").mkdir()
    (ws / "landing" / "fleet_maintenance").symlink_to(landing_dir / "fleet_maintenance")
    return ws


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, result


def dbt_env(ws: Path) -> dict[str, str]:
    state = ws / ".foundation" / "dbt"
    return {
        **os.environ,
        "DBT_PROFILES_DIR": str(state),
        "DBT_TARGET_PATH": str(state / "target" / "bench"),
        "DBT_LOG_PATH": str(state / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def bench_size(workdir: Path, trucks: int, days: int) -> SizeResult:
    landing_dir, rows = landing(workdir, trucks, days)
    ws = workspace(workdir, landing_dir, trucks, days)
    total, result = timed([FOUNDATION, "--workspace", str(ws), "run", "--json"], cwd=ws)
    run = json.loads(result.stdout)
    if not run["ok"]:
        raise RuntimeError(f"foundation run failed: {run['step_errors']} {run['problems']}")
    stages = run["stage_seconds"]
    parts = {k: stages.get(k, 0.0) for k in ("ingestion", "checks", "dbt", "publish")}
    build = [DBT, "build", "--project-dir", str(ws / "dbt_project")]
    anchor, _ = timed(build, cwd=ws / "dbt_project", env=dbt_env(ws))
    # sources as views over the snapshots' Parquet (ours) vs copied into DuckDB tables first
    views_prep, _ = timed([PYTHON, "-c", VIEW_SOURCES], cwd=ws)
    views_build, _ = timed(build, cwd=ws / "dbt_project", env=dbt_env(ws))
    tables_prep, _ = timed([PYTHON, "-c", COPY_SOURCES], cwd=ws)
    tables_build, _ = timed(build, cwd=ws / "dbt_project", env=dbt_env(ws))
    timed([PYTHON, "-c", VIEW_SOURCES], cwd=ws)  # leave the workspace as foundation keeps it
    return SizeResult(
        trucks=trucks,
        days=days,
        telemetry_rows=rows,
        total_s=round(total, 2),
        ingestion_s=round(parts["ingestion"], 2),
        checks_s=round(parts["checks"], 2),
        dbt_step_s=round(parts["dbt"], 2),
        publish_s=round(parts["publish"], 2),
        overhead_s=round(total - sum(parts.values()), 2),
        anchor_dbt_s=round(anchor, 2),
        views_then_build_s=round(views_prep + views_build, 2),
        tables_then_build_s=round(tables_prep + tables_build, 2),
    )


def render(results: list[SizeResult]) -> str:
    lines = [
        "| fleet | telemetry rows | `foundation run` | ingestion | checks | dbt step | publish | overhead | "
        "`dbt build` (anchor) | dbt step / anchor | sources: tables / views |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.trucks} trucks x {r.days} d | {r.telemetry_rows:,} | {r.total_s:.1f} s | {r.ingestion_s:.1f} s | "
            f"{r.checks_s:.1f} s | {r.dbt_step_s:.1f} s | {r.publish_s:.1f} s | {r.overhead_s:.1f} s "
            f"({r.overhead_ratio:.0%}) | {r.anchor_dbt_s:.1f} s | {r.dbt_ratio:.2f} | {r.source_ratio:.2f} |"
        )
    lines.append("")
    for r in results:
        met = "met" if r.overhead_ratio <= OVERHEAD_TARGET else "missed"
        lines.append(
            f"- {r.trucks} trucks: orchestration overhead {r.overhead_ratio:.0%} of the total "
            f"(target <= {OVERHEAD_TARGET:.0%}): {met}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100x365,2000x365", help="fleet sizes as TRUCKSxDAYS, comma-separated")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / ".out" / "dbt", help="git-ignored work folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes.split(","):
        trucks, days = (int(x) for x in size.lower().split("x"))
        print(f"{trucks} trucks x {days} days ...", file=sys.stderr, flush=True)
        results.append(bench_size(args.workdir, trucks, days))
        print(render(results[-1:]), file=sys.stderr, flush=True)  # each size as soon as it is measured
    table = render(results)
    print(table)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (args.workdir / f"results-{stamp}.json").write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
