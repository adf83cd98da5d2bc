"""`foundation maintenance` on a lakehouse in S3: a real S3-compatible server (moto's server mode on a loopback port,
the one stand-in for AWS), tables found by listing, compacted and vacuumed through deltalake's own object store."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from s3_server import S3Server, running_s3

from foundation.core.settings import MaintenanceSettings
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.maintenance import find_tables, run_maintenance
from foundation.engine.lakehouse.object_store import arrow_filesystem, filesystem_path

BUCKET = "maintained"
ROOT = f"s3://{BUCKET}/foundation"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.mark.slow
def test_maintenance_compacts_and_removes_an_orphan_object_on_s3(s3: S3Server) -> None:
    options = s3.environ()
    uri = f"{ROOT}/ml/fleet/failure_risk/api_predictions"
    # The table allows a zero retention, so the test need not wait a week (S3 objects cannot be back-dated).
    configuration = {"delta.deletedFileRetentionDuration": "interval 0 hours"}
    for i in range(6):
        rows = pa.table({"prediction_id": [f"p{i}"], "score": [i / 10]})
        first = configuration if i == 0 else None
        write_deltalake(uri, rows, mode="append", storage_options=options, configuration=first)
    live = DeltaTable(uri, storage_options=options).file_uris()
    fs = arrow_filesystem(uri, options)
    orphan = f"{filesystem_path(uri)}/part-00000-0badc0de-0000-0000-0000-000000000000-c000.snappy.parquet"
    fs.copy_file(filesystem_path(live[0]), orphan)  # written, never committed
    write_deltalake(f"{ROOT}/bronze/shop/orders", pa.table({"id": [1]}), storage_options=options)

    assert find_tables(ROOT, options) == (["bronze/shop/orders", "ml/fleet/failure_risk/api_predictions"], [])
    report = run_maintenance(ROOT, MaintenanceSettings(retention_hours=0), usecase="fleet", storage_options=options)
    (entry,) = report.tables
    assert report.ok, entry.notes
    assert (entry.kind, entry.files_before, entry.files_after, entry.files_compacted) == ("feedback", 6, 1, 6)
    assert entry.files_removed == 7  # the six compacted files and the orphan
    assert entry.bytes_reclaimed > 0
    assert not s3.keys(BUCKET, orphan.split("/", 1)[1])

    con = duckdb.connect()
    try:
        relation = delta_relation_sql(con, uri, storage_options=options)
        assert con.execute(f"select count(*), sum(score) from {relation}").fetchall() == [(6, pytest.approx(1.5))]
    finally:
        con.close()
