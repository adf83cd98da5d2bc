"""`sql` extract benchmark: rows/s of `foundation ingest` from an N-row SQLite table, against anchors in the same run.

DuckDB's own SQLite scan (the `sqlite_scanner` extension) would be the natural anchor, but DuckDB extensions cannot be
downloaded on this machine; the anchors are therefore the best Arrow-native readers available:

- `anchor: ADBC -> Delta`  ADBC SQLite driver -> Arrow batches -> `write_deltalake`: a bare load (ratio 1.0)
- `ADBC read only`         the same read, batches discarded: the floor any SQLite load pays
- `sqlite3 fetchmany`      the stdlib driver, rows -> Arrow batches (what SQLAlchemy + fetchmany amounts to), read only
- `foundation ingest`      our whole path: stage (ADBC -> Parquet) + typing/flags/lineage (DuckDB) + Delta + report

Each runs in its own process (peak RSS is per process); the table is generated once with DuckDB and ADBC's bulk
ingest and cached in bench/.out/. Ratios are throughput relative to the anchor (higher is better).

    .venv/bin/python bench/sql_ingest.py                    # 5M rows
    .venv/bin/python bench/sql_ingest.py --rows-list 1000000,5000000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / ".out" / "sql_ingest"
METHODS = ("anchor", "adbc_read", "sqlite3", "foundation")
LABELS = {
    "anchor": "anchor: ADBC -> Delta",
    "adbc_read": "ADBC read only",
    "sqlite3": "sqlite3 fetchmany -> Arrow",
    "foundation": "foundation ingest (sql)",
}
BATCH_ROWS = 122_880


def make_table(path: Path, rows: int) -> None:
    """An N-row `telemetry` table: DuckDB generates the Arrow data, ADBC bulk-ingests it into SQLite."""
    import adbc_driver_sqlite.dbapi as sqlite_dbapi
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    reader = duckdb.sql(
        f"""SELECT i AS id, 'T' || lpad(CAST(i % 500 AS VARCHAR), 4, '0') AS truck_id,
                   strftime(TIMESTAMP '2024-01-01' + to_seconds(i), '%Y-%m-%d %H:%M:%S') AS ts,
                   CAST(70 + (i % 37) * 0.5 AS DOUBLE) AS engine_temp_c,
                   CAST(300 + (i % 101) * 1.25 AS DOUBLE) AS oil_pressure_kpa
            FROM range({rows}) t(i)"""
    ).to_arrow_reader(BATCH_ROWS)
    with sqlite_dbapi.connect(str(tmp)) as con, con.cursor() as cur:
        cur.adbc_ingest("telemetry", reader, mode="create")
        con.commit()
    tmp.rename(path)


def child(method: str, db: Path, workdir: Path) -> dict[str, float]:
    """One measurement in this (fresh) process: rows and seconds (imports excluded: the machine's start-up noise)."""
    import adbc_driver_sqlite.dbapi  # noqa: F401 - every method's libraries are imported before the clock starts
    import pyarrow  # noqa: F401
    from deltalake import write_deltalake

    from foundation.core.workspace import Workspace
    from foundation.engine.ingest.runner import ingest_source

    started = time.perf_counter()
    rows = 0
    if method in ("anchor", "adbc_read"):
        import adbc_driver_sqlite.dbapi as sqlite_dbapi

        with sqlite_dbapi.connect(f"file:{db}?mode=ro") as con, con.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)})
            cur.execute("SELECT * FROM telemetry")
            reader = cur.fetch_record_batch()
            if method == "anchor":
                counted = _counting(reader)
                write_deltalake(str(workdir / "anchor_delta"), counted, mode="overwrite")
                rows = counted.rows  # type: ignore[attr-defined]
            else:
                rows = sum(batch.num_rows for batch in reader)
    elif method == "sqlite3":
        import sqlite3

        import pyarrow as pa

        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        cursor = con.execute("SELECT * FROM telemetry")
        names = [d[0] for d in cursor.description]
        while chunk := cursor.fetchmany(BATCH_ROWS):
            batch = pa.RecordBatch.from_arrays([pa.array(col) for col in zip(*chunk, strict=True)], names=names)
            rows += batch.num_rows
        con.close()
    elif method == "foundation":
        import os

        import yaml

        root = workdir / "ws"
        (root / "usecases/bench/sources").mkdir(parents=True, exist_ok=True)
        (root / "foundation.yaml").write_text(f"ingest: {{allowed_roots: [{json.dumps(str(db.parent))}]}}\n")
        source = {
            "name": "telemetry",
            "description": "Benchmark telemetry table in SQLite",
            "owner": "bench@example.com",
            "schedule": "manual",
            "extract": {"type": "sql", "url": "${BENCH_DB_URL}", "table": "telemetry"},
            "load": {"mode": "replace"},
        }
        (root / "usecases/bench/sources/telemetry.yaml").write_text(yaml.safe_dump(source))
        os.environ["BENCH_DB_URL"] = f"sqlite:///{db}"
        workspace = Workspace.open(root)
        [ref] = [s for s in workspace.scan.sources if s.name == "telemetry"]
        started = time.perf_counter()  # the load only, like the others (not writing the YAML, scanning it)
        report = ingest_source(workspace, ref)
        rows = report.rows_landed
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _counting(reader):  # type: ignore[no-untyped-def]
    """The reader, counting rows as deltalake pulls them."""
    import pyarrow as pa

    state = {"rows": 0}

    def batches():  # type: ignore[no-untyped-def]
        for batch in reader:
            state["rows"] += batch.num_rows
            yield batch

    wrapped = pa.RecordBatchReader.from_batches(reader.schema, batches())

    class Counted:
        def __arrow_c_stream__(self, requested_schema=None):  # type: ignore[no-untyped-def]
            return wrapped.__arrow_c_stream__(requested_schema)

        @property
        def rows(self) -> int:
            return state["rows"]

        schema = wrapped.schema

    return Counted()


def run(method: str, db: Path, workdir: Path) -> dict[str, float]:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", method, "--db", str(db), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows-list", default="5000000", help="comma-separated table sizes (default 5000000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; the best is kept")
    parser.add_argument("--keep", action="store_true", help="keep the Delta tables and workspaces written")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.db), Path(args.workdir))))
        return
    print("| rows | method | seconds | rows/s | ratio vs anchor | peak RSS MB |")
    print("|---:|---|---:|---:|---:|---:|")
    for rows in [int(r) for r in args.rows_list.split(",")]:
        db = OUT / f"telemetry_{rows}.db"
        if not db.exists():
            started = time.perf_counter()
            make_table(db, rows)
            print(f"<!-- generated {db.name} in {time.perf_counter() - started:.1f}s -->", file=sys.stderr)
        results = {}
        for method in METHODS:
            best = min((run(method, db, OUT / "work" / method) for _ in range(args.repeat)), key=lambda r: r["seconds"])
            if best["rows"] != rows:
                raise RuntimeError(f"{method} read {best['rows']} rows, expected {rows}")
            results[method] = best
        anchor = rows / results["anchor"]["seconds"]
        for method in METHODS:
            r = results[method]
            speed = rows / r["seconds"]
            print(
                f"| {rows:,} | {LABELS[method]} | {r['seconds']:.2f} | {speed:,.0f} | {speed / anchor:.2f} | "
                f"{r['peak_rss_mb']:.0f} |"
            )
    if not args.keep:
        shutil.rmtree(OUT / "work", ignore_errors=True)


if __name__ == "__main__":
    main()
