"""Benchmark: `foundation run` (ingestion, checks, dbt, gold) against `dbt build` run directly, in one run.

Run from the repository root::

    .venv/bin/python bench/dbt_build.py                          # 100 and 2,000 trucks x 365 days of hourly telemetry
    .venv/bin/python bench/dbt_build.py --sizes 100x365,500x365  # other fleet sizes (trucks x days)

For each size it generates the demo's landing files once (cached under --workdir), then, on a fresh workspace:

(a) `foundation run --json`, timed from outside: the total, split by the run's own step timings into ingestion,
    checks, dbt (`dbt parse` when stale + the dbt step: bronze views + `dbt build` + dagster-dbt's event handling),
    publish (gold Delta snapshots) and ml (the model specs' training, registration, predictions, monitoring: the
    demo has two); orchestration overhead = total - those parts (Python and Dagster start-up, definitions, the
    run's event storage). Its share is given of the total and of the total without ml (what issue #4 measured);
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
FOUNDATION = str(Path(PYTHON).with_name("foundation"))
DBT = str(Path(PYTHON).with_name("dbt"))
OVERHEAD_TARGET = 0.15

COPY_SOURCES = """
import sys, duckdb
from foundation.core.workspace import Workspace
from foundation.engine.dbt.warehouse import bronze_view_sql, warehouse_path
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
from foundation.core.workspace import Workspace
from foundation.engine.dbt.warehouse import refresh_bronze_views
import duckdb
from foundation.engine.dbt.warehouse import warehouse_path
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
    ml_s: float
    overhead_s: float
    anchor_dbt_s: float
    views_then_build_s: float
    tables_then_build_s: float

    @property
    def overhead_ratio(self) -> float:
        return self.overhead_s / self.total_s

    @property
    def overhead_ratio_without_ml(self) -> float:
        return self.overhead_s / (self.total_s - self.ml_s)

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
    # A cache from an older generator (before the depot page) lacks files the sources now read: regenerate it.
    if not marker.exists() or not (folder / "fleet_maintenance" / "web").is_dir():
        from foundation.demo.fleet_data import FleetSize, generate_fleet_landing

        shutil.rmtree(folder, ignore_errors=True)
        generated = generate_fleet_landing(folder / "fleet_maintenance", FleetSize(trucks=trucks, days=days))
        marker.write_text(json.dumps(generated.rows))
    return folder, json.loads(marker.read_text())["telemetry"]


def workspace(workdir: Path, landing_dir: Path, trucks: int, days: int, with_ml: bool = False) -> Path:
    """A fresh copy of the repository's workspace on the cached landing files; without the model specs
    (`usecases/*/ml/`) unless `with_ml`: issue #4 times ingestion, checks and dbt, bench/training.py the models."""
    ws = workdir / f"ws_{trucks}x{days}"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    shutil.copy(REPO / "foundation.yaml", ws / "foundation.yaml")
    skip = ["_generated", "target", "logs", "__pycache__"] + ([] if with_ml else ["ml"])
    shutil.copytree(REPO / "usecases", ws / "usecases", ignore=shutil.ignore_patterns(*skip))
    ignore = shutil.ignore_patterns("_generated", "kpis", "target", "logs")
    shutil.copytree(REPO / "dbt_project", ws / "dbt_project", ignore=ignore)
    (ws / "landing").mkdir()
    (ws / "landing" / "fleet_maintenance").symlink_to(landing_dir / "fleet_maintenance")
    settings = yaml.safe_load((ws / "foundation.yaml").read_text(encoding="utf-8"))  # the symlink leads outside
    settings.setdefault("ingest", {}).setdefault("allowed_roots", []).append(str(landing_dir.resolve()))
    (ws / "foundation.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return ws


@contextmanager
def demo_servers(landing_dir: Path) -> Iterator[None]:
    """The workshop REST API and the depot page the demo's REST/HTML sources read, as `foundation demo` serves them
    (threads of this process on 127.0.0.1; their URLs and token are in the environment the children inherit)."""
    from foundation.demo.depot_page import running_depot_page
    from foundation.demo.workshop_api import running_workshop_api

    root = landing_dir / "fleet_maintenance"
    with running_workshop_api(root), running_depot_page(root):
        yield


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, result


def dbt_env(ws: Path) -> dict[str, str]:
    """The environment foundation gives dbt (profiles, the framework's macros...), with the anchor's own target."""
    from foundation.core.workspace import Workspace
    from foundation.engine.dbt.invocation import dbt_env as foundation_dbt_env
    from foundation.engine.dbt.paths import dbt_paths

    paths = dbt_paths(Workspace.open(ws))
    return {**foundation_dbt_env(paths), "DBT_TARGET_PATH": str(paths.target_dir / "bench")}


def stock_event_log_env(ws: Path) -> dict[str, str]:
    """The environment of a `foundation run` on Dagster's own SQLite event log (a connection per operation, fsync at
    each commit) instead of foundation's: a hand-written dagster.yaml in `dagster.home` is used as it is."""
    home = ws / ".dagster_stock"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return {**os.environ, "FOUNDATION_DAGSTER__HOME": str(home.resolve())}


def bench_size(
    workdir: Path, trucks: int, days: int, with_ml: bool = False, event_log: str = "foundation"
) -> SizeResult:
    landing_dir, rows = landing(workdir, trucks, days)
    ws = workspace(workdir, landing_dir, trucks, days, with_ml)
    with demo_servers(landing_dir):  # the servers' URLs and token are in os.environ from here on
        env = stock_event_log_env(ws) if event_log == "dagster" else None
        total, result = timed([FOUNDATION, "--workspace", str(ws), "run", "--json"], cwd=ws, env=env)
    run = json.loads(result.stdout)
    if not run["ok"]:
        raise RuntimeError(f"foundation run failed: {run['step_errors']} {run['problems']}")
    stages = run["stage_seconds"]
    (workdir / f"run_{trucks}x{days}.json").write_text(result.stdout)  # every step's timing, for reading later
    parts = {k: stages.get(k, 0.0) for k in ("ingestion", "checks", "dbt", "publish", "ml")}
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
        ml_s=round(parts["ml"], 2),
        overhead_s=round(total - sum(parts.values()), 2),
        anchor_dbt_s=round(anchor, 2),
        views_then_build_s=round(views_prep + views_build, 2),
        tables_then_build_s=round(tables_prep + tables_build, 2),
    )


def render(results: list[SizeResult]) -> str:
    lines = [
        "| fleet | telemetry rows | `foundation run` | ingestion | checks | dbt step | publish | ml | overhead | "
        "overhead without ml | `dbt build` (anchor) | dbt step / anchor | sources: tables / views |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.trucks} trucks x {r.days} d | {r.telemetry_rows:,} | {r.total_s:.1f} s | {r.ingestion_s:.1f} s | "
            f"{r.checks_s:.1f} s | {r.dbt_step_s:.1f} s | {r.publish_s:.1f} s | {r.ml_s:.1f} s | {r.overhead_s:.1f} s "
            f"({r.overhead_ratio:.0%}) | {r.overhead_ratio_without_ml:.0%} | {r.anchor_dbt_s:.1f} s | "
            f"{r.dbt_ratio:.2f} | {r.source_ratio:.2f} |"
        )
    lines.append("")
    for r in results:
        met = "met" if r.overhead_ratio <= OVERHEAD_TARGET else "missed"
        met_without_ml = "met" if r.overhead_ratio_without_ml <= OVERHEAD_TARGET else "missed"
        lines.append(
            f"- {r.trucks} trucks: orchestration overhead {r.overhead_ratio:.0%} of the total "
            f"(target <= {OVERHEAD_TARGET:.0%}): {met}; {r.overhead_ratio_without_ml:.0%} of the total without ml: "
            f"{met_without_ml}"
        )
    lines.append(f"- load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100x365,2000x365", help="fleet sizes as TRUCKSxDAYS, comma-separated")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / ".out" / "dbt", help="git-ignored work folder")
    parser.add_argument(
        "--with-ml",
        action="store_true",
        help="keep the model specs (usecases/*/ml/): the run also trains, registers and scores (the ml column)",
    )
    parser.add_argument(
        "--event-log",
        choices=["foundation", "dagster"],
        default="foundation",
        help="the run's Dagster event log on SQLite: foundation's (connections kept open, the default) or Dagster's "
        "stock SqliteEventLogStorage (a connection per operation): the before/after of docs/benchmarks.md",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.workdir = args.workdir.resolve()  # the children run in the workspace folder: no relative paths
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes.split(","):
        trucks, days = (int(x) for x in size.lower().split("x"))
        print(f"{trucks} trucks x {days} days ...", file=sys.stderr, flush=True)
        results.append(bench_size(args.workdir, trucks, days, args.with_ml, args.event_log))
        print(render(results[-1:]), file=sys.stderr, flush=True)  # each size as soon as it is measured
    table = render(results)
    print(table)
    print(f"- Dagster event log: {args.event_log}'s")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (args.workdir / f"results-{stamp}.json").write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
