"""`_load_id` and `_loaded_at` are built in Arrow for each batch (not copied row by row by DuckDB): every row of a
load carries its load's values, across batches of any size, with the types the bronze tables always had."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from deltalake import DeltaTable

from foundation.engine.ingest.lineage import ConstantLineage


def test_every_row_of_each_load_carries_its_load_id_and_time(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("readings", {"type": "csv", "path": "landing/readings/*.csv"}, load={"mode": "append"})],
        settings={"ingest": {"batch_rows": 3}},  # batches of 3, then a shorter last one
    )
    kit.land("landing/readings/1.csv", "id,v\n" + "".join(f"{i},{i * 1.5}\n" for i in range(1, 9)))
    first = kit.ingest("readings")
    kit.land("landing/readings/2.csv", "id,v\n" + "".join(f"{i},{i}.5\n" for i in range(9, 11)))
    second = kit.ingest("readings")
    table = f'bronze."{kit.usecase}__readings"'
    rows = kit.query(f"SELECT _load_id, _loaded_at, count(*) AS n FROM {table} GROUP BY ALL ORDER BY n DESC")
    assert [(r["_load_id"], r["n"]) for r in rows] == [(first.load_id, 8), (second.load_id, 2)]
    for row in rows:  # the load id starts with the load's start time, which _loaded_at is
        loaded_at = row["_loaded_at"].astimezone(UTC)
        started = datetime.strptime(row["_load_id"][:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert loaded_at.replace(microsecond=0) == started
    schema = DeltaTable(kit.bronze_uri("readings")).schema().to_arrow()
    types = {field.name: str(field.type) for field in pa.schema(schema)}
    assert types["_load_id"] in ("string", "large_string", "string_view")
    assert types["_loaded_at"].startswith("timestamp[us, tz=")


def test_lineage_columns_sit_before_the_source_file_and_keep_other_columns():
    lineage = ConstantLineage("20261206T000000Z-abc", datetime(2026, 12, 6, 12, 30, 15, 123456, tzinfo=UTC))
    streamed = [pa.field("id", pa.int64()), pa.field("_source_file", pa.string())]
    schema = lineage.schema(streamed)
    assert schema.names == ["id", "_load_id", "_loaded_at", "_source_file"]
    batch = pa.RecordBatch.from_pydict({"id": [1, 2], "_source_file": ["a.csv", "a.csv"], "_row_rule_failures": [0, 0]})
    out = lineage.add(batch, schema)
    assert out.schema.names == ["id", "_load_id", "_loaded_at", "_source_file", "_row_rule_failures"]
    assert out.column("_load_id").to_pylist() == ["20261206T000000Z-abc"] * 2
    moments = out.column("_loaded_at").cast(pa.timestamp("us")).to_pylist()
    assert moments == [datetime(2026, 12, 6, 12, 30, 15, 123456)] * 2
    assert lineage.add(batch.slice(0, 0), schema).num_rows == 0


def test_a_one_file_load_gets_the_same_source_file_in_bronze_and_quarantine_as_a_several_file_load(
    make_workspace, spec
):
    """One file read: `_source_file` is one value, added in Arrow (DuckDB no longer copies it row by row); it must
    be the very value DuckDB gives when it reads several files, in bronze and in the quarantine alike."""
    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/readings/*.csv"},
                load={"mode": "append"},
                columns=[{"name": "v", "type": "double"}],
            )
        ],
        settings={"ingest": {"batch_rows": 2}},
    )
    kit.land("landing/readings/1.csv", "id,v\n1,1.5\n2,bad\n3,3.5\n")
    kit.ingest("readings")  # one file
    kit.land("landing/readings/2.csv", "id,v\n4,4.5\n5,oops\n")
    kit.land("landing/readings/3.csv", "id,v\n6,6.5\n")
    kit.ingest("readings")  # two files: DuckDB's own filename column
    table = f'bronze."{kit.usecase}__readings"'
    landed = kit.query(f"SELECT id, _source_file FROM {table} ORDER BY id")
    folder = {r["_source_file"].rsplit("/", 1)[0] for r in landed}
    assert len(folder) == 1
    assert [(r["id"], r["_source_file"].rsplit("/", 1)[1]) for r in landed] == [
        (1, "1.csv"),
        (3, "1.csv"),
        (4, "2.csv"),
        (6, "3.csv"),
    ]
    quarantined = sorted((q["_source_file"], q["_invalid_reason"]) for q in kit.quarantine("readings"))
    assert [(path.rsplit("/", 1)[0], path.rsplit("/", 1)[1], reason[:8]) for path, reason in quarantined] == [
        (*folder, "1.csv", "v: canno"),
        (*folder, "2.csv", "v: canno"),
    ]
