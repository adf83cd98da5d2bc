"""Benchmark: reading a Delta table on S3 into DuckDB, three ways, against the same table on local disk (anchor).

Run from the repository root::

    .venv/bin/python bench/lakehouse_s3.py                 # 2M rows, 4 files
    .venv/bin/python bench/lakehouse_s3.py --rows 5000000

DuckDB's S3 reader (httpfs) is not bundled in the duckdb wheel and cannot be downloaded here, so a remote Delta
snapshot reaches DuckDB through Arrow. Measured, in one run, on one table written once to a local folder and once to
an S3-compatible server (moto's server mode in its own process on a loopback port, the stand-in for S3):

  anchor        local folder: DuckDB read_parquet over the snapshot's files (the catalog's local path)
  pyarrow-ds    S3: a lazy pyarrow dataset over the snapshot's files on pyarrow's S3FileSystem, scanned by DuckDB
                (foundation/engine/lakehouse/object_store.py: what the catalog does)
  deltalake-qb  S3: deltalake's own DataFusion reader (QueryBuilder) streamed as Arrow into DuckDB (a one-shot
                stream: a view on it can be read only once)

Two queries each: a full aggregate over every column, and one column with a selective filter (shows pushdown).
Each is the best of --repeat runs; ratios are against the anchor of the same query. Loopback S3 measures the
client path (requests, decoding), not a real network. A benchmark reports, it does not fail.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUERIES = {
    "full aggregate": "select count(*), sum(km), count(distinct truck_id), max(ts) from {rel}",
    "1 column, 1% filter": "select count(*) from {rel} where km < 10",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run(args, f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def run(args: argparse.Namespace, endpoint: str) -> None:
    import boto3
    import duckdb
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder, write_deltalake

    from foundation.engine.lakehouse.catalog import delta_relation_sql

    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }
    os.environ.update(env)
    for _ in range(100):
        try:
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            break
        except Exception:
            time.sleep(0.1)

    per_file = args.rows // args.files
    local = Path(tempfile.mkdtemp(prefix="bench-s3-")) / "t"
    remote = "s3://bench/lake/t"
    for i in range(args.files):
        start = i * per_file
        ids = pa.array(range(start, start + per_file), pa.int64())
        table = pa.table(
            {
                "truck_id": pa.compute.cast(pa.compute.bit_wise_and(ids, 1023), pa.string()),
                "ts": pa.compute.cast(pa.compute.multiply(ids, 3_600_000_000), pa.timestamp("us")),
                "km": pa.compute.cast(pa.compute.bit_wise_and(ids, 1023), pa.float64()),
                "note": pa.array(["engine ok"] * per_file),
            }
        )
        write_deltalake(str(local), table, mode="append")
        write_deltalake(remote, table, mode="append")
    print(f"table: {args.rows:,} rows in {args.files} files, best of {args.repeat}; S3 = moto on loopback")

    def via_catalog(uri: str) -> Callable[[str], object]:
        def query(sql: str) -> object:
            con = duckdb.connect()
            return con.execute(sql.format(rel=delta_relation_sql(con, uri))).fetchall()

        return query

    def via_query_builder(sql: str) -> object:
        con = duckdb.connect()
        reader = pa.RecordBatchReader.from_stream(
            QueryBuilder().register("t", DeltaTable(remote)).execute("select * from t")
        )
        con.register("qb", reader)
        return con.execute(sql.format(rel="qb")).fetchall()

    ways = {
        "anchor (local)": via_catalog(str(local)),
        "pyarrow-ds (S3)": via_catalog(remote),
        "deltalake-qb (S3)": via_query_builder,
    }
    print(f"{'query':<22} {'way':<20} {'seconds':>8} {'ratio':>7}")
    for name, sql in QUERIES.items():
        anchor = None
        results = set()
        for way, query in ways.items():
            seconds, result = best_of(args.repeat, lambda q=query, s=sql: q(s))
            anchor = anchor or seconds
            results.add(repr(result))
            print(f"{name:<22} {way:<20} {seconds:>8.3f} {seconds / anchor:>6.2f}x")
        print(f"{'':<22} {'same answer' if len(results) == 1 else 'ANSWERS DIFFER: ' + str(results)}")


if __name__ == "__main__":
    main()
