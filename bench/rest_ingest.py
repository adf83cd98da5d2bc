"""`rest_api` extract benchmark: rows/s of our path against dlt's own `rest_api` pipeline, same server, same run.

A local threaded HTTP server (its own process, so it does not share a GIL with the clients) serves N records in pages
of 1,000 (`?page=N` -> {"data": [...], "page": N, "total_pages": T}), every page serialised once before the clock
starts. Against it, each in its own child process:

- `anchor: dlt rest_api -> duckdb`   dlt's `rest_api` source into dlt's own duckdb destination (extract, normalize,
                                     load): the ratio 1.0
- `foundation SourceLoader`          our load: dlt's REST client fetches, orjson -> NDJSON staging, DuckDB typing and
                                     flags, Delta commit with the cursor state, quality gate (the report's seconds)
- `foundation stage only`            the fetch + NDJSON staging part of the above, alone
- `foundation ingest (CLI)`          `foundation ingest --json` end to end: CLI, imports, Dagster run, load

Ratios are throughput relative to the anchor (higher is better; target >= 1). The machine is shared with other work:
read the ratios, not the absolute rows/s.

    .venv/bin/python bench/rest_ingest.py                  # 1M records
    .venv/bin/python bench/rest_ingest.py --records 200000 --no-cli
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / ".out" / "rest_ingest"
PAGE_SIZE = 1_000
TOKEN = "bench-token"
LABELS = {
    "dlt": "anchor: dlt rest_api -> duckdb",
    "loader": "foundation SourceLoader",
    "stage": "foundation stage only",
    "cli": "foundation ingest (CLI)",
}
SOURCE_YAML = """\
name: readings
description: Benchmark readings served by a local paginated REST API.
owner: bench@example.com
schedule: manual
extract:
  type: rest_api
  base_url: ${BENCH_API_URL}
  path: readings
  auth: {type: bearer, token: "${BENCH_TOKEN}"}
  data_selector: data
  paginator: {type: page_number, base_page: 1, total_path: total_pages}
  max_pages: 100000
load: {mode: append}
columns:
  - {name: id, type: bigint, required: true}
  - {name: truck_id, type: varchar}
  - {name: ts, type: timestamp}
  - {name: engine_temp_c, type: double}
  - {name: status, type: varchar}
"""


def _pages(records: int) -> list[bytes]:
    total = -(-records // PAGE_SIZE)
    pages = []
    for p in range(total):
        rows = [
            {
                "id": i,
                "truck_id": f"T{i % 997:04d}",
                "ts": f"2024-01-{1 + (i // 86_400) % 28:02d}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}",
                "engine_temp_c": 60.0 + (i % 500) / 10,
                "status": "ok" if i % 50 else "warn",
            }
            for i in range(p * PAGE_SIZE, min((p + 1) * PAGE_SIZE, records))
        ]
        pages.append(json.dumps({"data": rows, "page": p + 1, "total_pages": total}).encode())
    return pages


def serve(records: int, ready: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qsl, urlsplit

    pages = _pages(records)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # small replies (a 401, a short page) leave at once

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                body, status = b'{"error": "unauthorized"}', 401
            else:
                page = int(dict(parse_qsl(urlsplit(self.path).query)).get("page", "1"))
                body, status = (pages[page - 1] if 1 <= page <= len(pages) else b'{"data": []}'), 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ready.put(f"http://127.0.0.1:{server.server_address[1]}/")
    server.serve_forever()


def child(method: str, url: str, workdir: Path) -> dict[str, float]:
    """One measurement, in this (child) process; prints nothing, returns seconds and rows."""
    import os

    os.environ.update({"BENCH_API_URL": url, "BENCH_TOKEN": TOKEN, "DAGSTER_DISABLE_TELEMETRY": "1"})
    if method == "dlt":
        import dlt
        from dlt.sources.rest_api import rest_api_source

        started = time.perf_counter()
        source = rest_api_source(
            {
                "client": {
                    "base_url": url,
                    "auth": {"type": "bearer", "token": TOKEN},
                    "paginator": {"type": "page_number", "base_page": 1, "total_path": "total_pages"},
                },
                "resources": [{"name": "readings", "endpoint": {"path": "readings", "data_selector": "data"}}],
            }
        )
        pipeline = dlt.pipeline(
            pipeline_name="bench_rest",
            pipelines_dir=str(workdir / "dlt_pipelines"),
            destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
            dataset_name="bench",
        )
        pipeline.run(source)
        seconds = time.perf_counter() - started
        import duckdb

        con = duckdb.connect(str(workdir / "dlt.duckdb"), read_only=True)
        rows = con.execute("SELECT count(*) FROM bench.readings").fetchall()[0][0]
        return {"seconds": seconds, "rows": rows}
    workspace = _workspace(workdir)
    import foundation.engine.connectors.rest_api  # imports dlt (seconds): outside the clock, like the anchor's

    if method == "cli":
        foundation = str(Path(sys.executable).with_name("foundation"))
        started = time.perf_counter()
        result = subprocess.run(
            [foundation, "--workspace", str(workspace), "ingest", "--json"], capture_output=True, text=True, check=True
        )
        seconds = time.perf_counter() - started
        reports = json.loads(result.stdout)
        report = reports[0] if isinstance(reports, list) else reports["reports"][0]
        return {"seconds": seconds, "rows": report["rows_landed"]}
    from foundation.core.workspace import Workspace
    from foundation.engine.ingest.runner import SourceLoader

    ws = Workspace.open(workspace)
    source = next(s for s in ws.sources() if s.name == "readings")
    if method == "stage":
        from foundation.engine.connectors.staging import StageRequest, stage_extract

        folder = workdir / "staging"
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        staged = stage_extract(StageRequest(workspace, source.key, source.spec.extract, None, folder, 122_880))
        return {"seconds": time.perf_counter() - started, "rows": staged.rows}
    started = time.perf_counter()
    report = SourceLoader(ws, source).run()
    return {"seconds": time.perf_counter() - started, "rows": report.rows_landed}


def _workspace(workdir: Path) -> Path:
    root = workdir / "ws"
    folder = root / "usecases" / "bench" / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "foundation.yaml").write_text("{}\n")
    (folder / "readings.yaml").write_text(SOURCE_YAML)
    return root


def run(method: str, url: str, workdir: Path) -> dict[str, float]:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    command = [sys.executable, __file__, "--child", method, "--url", url, "--workdir", str(workdir)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="records the API serves (pages of 1,000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; the best is kept")
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end `foundation ingest` run")
    parser.add_argument("--keep", action="store_true", help="keep bench/.out/rest_ingest/ after the run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, args.workdir)))
        return

    ready: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(args.records, ready), daemon=True)
    server.start()
    try:
        url = ready.get(timeout=600)
        methods = ["dlt", "loader", "stage"] + ([] if args.no_cli else ["cli"])
        results: dict[str, dict[str, float]] = {}
        for method in methods:
            best: dict[str, float] | None = None
            for _ in range(args.repeat):
                measured = run(method, url, OUT / method)
                if best is None or measured["seconds"] < best["seconds"]:
                    best = measured
            assert best is not None
            results[method] = best
            print(f"  {LABELS[method]}: {best['rows']:,} rows in {best['seconds']:.2f}s", file=sys.stderr)
    finally:
        server.terminate()
        server.join(timeout=10)
        if not args.keep:
            shutil.rmtree(OUT, ignore_errors=True)

    anchor = results["dlt"]["rows"] / results["dlt"]["seconds"]
    print(f"\n{args.records:,} records, pages of {PAGE_SIZE:,} (rows/s; ratio = throughput / anchor's)\n")
    print("| path | rows | seconds | rows/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for method, measured in results.items():
        rate = measured["rows"] / measured["seconds"]
        rows, seconds = f"{measured['rows']:,.0f}", f"{measured['seconds']:.2f}"
        print(f"| {LABELS[method]} | {rows} | {seconds} | {rate:,.0f} | {rate / anchor:.2f} |")
    loader = results["loader"]["rows"] / results["loader"]["seconds"] / anchor
    print(f"\ntarget: foundation SourceLoader >= 1x the anchor: {'met' if loader >= 1 else 'missed'} ({loader:.2f}x)")


if __name__ == "__main__":
    main()
