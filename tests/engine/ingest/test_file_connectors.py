"""File connectors end to end: real files written here, loaded into bronze Delta, read back through DuckDB."""

from __future__ import annotations

import gzip
import json
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from foundation.engine.connectors.files import EmptyFileError, NoFilesMatchedError
from foundation.engine.connectors.landing_sql import SchemaMismatchError

LINEAGE = ("_load_id", "_loaded_at", "_source_file")


def data_columns(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in LINEAGE}


def test_csv_glob_reads_every_matching_file(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/readings/*.csv"},
                columns=[{"name": "id", "type": "integer"}, {"name": "value", "type": "double"}],
            )
        ],
        files={
            "landing/readings/2024-01.csv": "id,value\n1,1.5\n2,2.5\n",
            "landing/readings/2024-02.csv": "id,value\n3,3.5\n",
            "landing/readings/2024-03.csv": "id,value\n4,4.5\n5,5.5\n6,6.5\n",
            "landing/readings/notes.txt": "id,value\n99,99\n",
            "landing/other/2024-01.csv": "id,value\n98,98\n",
        },
    )
    report = kit.ingest("readings")
    assert (report.files_total, report.files_loaded, report.rows_read, report.rows_landed) == (3, 3, 6, 6)
    rows = kit.rows("readings", order_by="id")
    assert [(r["id"], r["value"]) for r in rows] == [(1, 1.5), (2, 2.5), (3, 3.5), (4, 4.5), (5, 5.5), (6, 6.5)]
    assert {r["_source_file"].rsplit("/", 1)[-1] for r in rows} == {"2024-01.csv", "2024-02.csv", "2024-03.csv"}
    assert report.schema[:2] == [("id", "int32"), ("value", "double")]


def test_csv_path_list_and_recursive_glob(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("readings", {"type": "csv", "path": ["landing/a.csv", "landing/deep/**/*.csv"]})],
        files={
            "landing/a.csv": "id\n1\n",
            "landing/deep/x/b.csv": "id\n2\n",
            "landing/deep/x/y/c.csv": "id\n3\n",
        },
    )
    report = kit.ingest("readings")
    assert report.files_total == 3
    assert [r["id"] for r in kit.rows("readings", order_by="id")] == [1, 2, 3]


def test_csv_with_semicolon_delimiter(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "prices",
                {"type": "csv", "path": "landing/prices.csv", "delimiter": ";"},
                columns=[{"name": "sku", "type": "varchar"}, {"name": "price", "type": "decimal(10,2)"}],
            )
        ],
        files={"landing/prices.csv": "sku;price;label\nA-1;10.50;first, with comma\nB-2;3.25;second\n"},
    )
    report = kit.ingest("prices")
    assert report.rows_landed == 2
    rows = kit.rows("prices", order_by="sku")
    assert [data_columns(r) for r in rows] == [
        {"sku": "A-1", "price": Decimal("10.50"), "label": "first, with comma"},
        {"sku": "B-2", "price": Decimal("3.25"), "label": "second"},
    ]


def test_headerless_csv_with_column_names(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "events",
                {"type": "csv", "path": "landing/events.csv", "header": False, "column_names": ["id", "kind", "at"]},
                columns=[{"name": "id", "type": "integer"}, {"name": "at", "type": "date"}],
            )
        ],
        files={"landing/events.csv": "1,start,2024-01-02\n2,stop,2024-01-03\n"},
    )
    report = kit.ingest("events")
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (2, 2, 0)
    rows = kit.rows("events", order_by="id")
    assert [data_columns(r) for r in rows] == [
        {"id": 1, "kind": "start", "at": date(2024, 1, 2)},
        {"id": 2, "kind": "stop", "at": date(2024, 1, 3)},
    ]


def test_utf8_bom_is_not_part_of_the_first_column_name(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("bom", {"type": "csv", "path": "landing/bom.csv"}, columns=[{"name": "id", "type": "integer"}])],
    )
    kit.land("landing/bom.csv", "\ufeffid,city\n1,Zürich\n2,Köln\n", encoding="utf-8")
    assert kit.root.joinpath("landing/bom.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    report = kit.ingest("bom")
    assert [name for name, _ in report.schema][:2] == ["id", "city"]
    assert [data_columns(r) for r in kit.rows("bom", order_by="id")] == [
        {"id": 1, "city": "Zürich"},
        {"id": 2, "city": "Köln"},
    ]


def test_utf8_bom_on_an_undeclared_first_column(make_workspace, spec):
    kit = make_workspace(sources=[spec("bom", {"type": "csv", "path": "landing/bom.csv"})])
    kit.land("landing/bom.csv", "\ufeffCity Name,n\nZürich,1\n", encoding="utf-8")
    kit.ingest("bom")
    (row,) = kit.rows("bom")
    assert data_columns(row) == {"city_name": "Zürich", "n": 1}


def test_latin1_encoding_keeps_accented_values(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("cities", {"type": "csv", "path": "landing/cities.csv", "encoding": "latin-1"})],
    )
    kit.land("landing/cities.csv", "id,name\n1,Besançon\n2,Málaga\n3,Düsseldorf\n", encoding="latin-1")
    assert "ç".encode("latin-1") in kit.root.joinpath("landing/cities.csv").read_bytes()
    report = kit.ingest("cities")
    assert report.rows_landed == 3
    assert [r["name"] for r in kit.rows("cities", order_by="id")] == ["Besançon", "Málaga", "Düsseldorf"]


def test_utf16_encoding(make_workspace, spec):
    kit = make_workspace(sources=[spec("wide", {"type": "csv", "path": "landing/wide.csv", "encoding": "utf-16"})])
    kit.land("landing/wide.csv", "id,name\n1,Zoë\n2,Łódź\n".encode("utf-16"))
    kit.ingest("wide")
    assert [(r["id"], r["name"]) for r in kit.rows("wide", order_by="id")] == [(1, "Zoë"), (2, "Łódź")]


def test_gzipped_csv(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("zipped", {"type": "csv", "path": "landing/*.csv.gz"})],
        files={
            "landing/part1.csv.gz": gzip.compress(b"id,word\n1,alpha\n2,beta\n"),
            "landing/part2.csv.gz": gzip.compress(b"id,word\n3,gamma\n"),
        },
    )
    report = kit.ingest("zipped")
    assert report.rows_landed == 3
    assert [(r["id"], r["word"]) for r in kit.rows("zipped", order_by="id")] == [
        (1, "alpha"),
        (2, "beta"),
        (3, "gamma"),
    ]


def test_parquet_files(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "measures",
                {"type": "parquet", "path": "landing/*.parquet"},
                columns=[{"name": "sensor_id", "from": "Sensor ID"}, {"name": "reading", "type": "double"}],
            )
        ]
    )
    (kit.root / "landing").mkdir()
    ts = [datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 11)]
    pq.write_table(pa.table({"Sensor ID": ["s1", "s2"], "reading": [1, 2], "ts": ts}), kit.root / "landing/a.parquet")
    pq.write_table(
        pa.table({"Sensor ID": ["s3"], "reading": [3], "ts": [datetime(2024, 1, 2)]}), kit.root / "landing/b.parquet"
    )
    report = kit.ingest("measures")
    assert report.rows_landed == 3
    rows = kit.rows("measures", order_by="sensor_id")
    assert [data_columns(r) for r in rows] == [
        {"sensor_id": "s1", "reading": 1.0, "ts": ts[0]},
        {"sensor_id": "s2", "reading": 2.0, "ts": ts[1]},
        {"sensor_id": "s3", "reading": 3.0, "ts": datetime(2024, 1, 2)},
    ]


def test_json_array_file(make_workspace, spec):
    records = [{"id": 1, "tags": "a", "nested": {"x": 1}}, {"id": 2, "tags": "b", "nested": {"x": 2}}]
    kit = make_workspace(
        sources=[spec("docs", {"type": "json", "path": "landing/docs.json"})],
        files={"landing/docs.json": json.dumps(records)},
    )
    report = kit.ingest("docs")
    assert report.rows_landed == 2
    rows = kit.rows("docs", order_by="id")
    assert [(r["id"], r["tags"], r["nested"]) for r in rows] == [(1, "a", {"x": 1}), (2, "b", {"x": 2})]


def test_ndjson_files(make_workspace, spec):
    lines = "\n".join(json.dumps({"id": i, "score": i / 2}) for i in range(1, 6)) + "\n"
    kit = make_workspace(
        sources=[
            spec("lines", {"type": "ndjson", "path": "landing/*.ndjson"}, columns=[{"name": "id", "type": "bigint"}])
        ],
        files={"landing/a.ndjson": lines, "landing/b.ndjson": json.dumps({"id": 6, "score": 3.0}) + "\n"},
    )
    report = kit.ingest("lines")
    assert report.rows_landed == 6
    assert [(r["id"], r["score"]) for r in kit.rows("lines", order_by="id")] == [
        (1, 0.5),
        (2, 1.0),
        (3, 1.5),
        (4, 2.0),
        (5, 2.5),
        (6, 3.0),
    ]


def test_delta_table_source(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("mirror", {"type": "delta", "path": "landing/upstream"}, load={"mode": "replace"})]
    )
    upstream = str(kit.root / "landing/upstream")
    write_deltalake(upstream, pa.table({"id": [1, 2], "name": ["a", "b"]}))
    write_deltalake(upstream, pa.table({"id": [3], "name": ["c"]}), mode="append")
    report = kit.ingest("mirror")
    assert report.rows_landed == 3
    rows = kit.rows("mirror", order_by="id")
    assert [(r["id"], r["name"]) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
    assert {r["_source_file"] for r in rows} == {upstream}


def test_delta_table_source_at_a_version(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("mirror", {"type": "delta", "path": "landing/upstream", "version": 0}, load={"mode": "replace"})]
    )
    upstream = str(kit.root / "landing/upstream")
    write_deltalake(upstream, pa.table({"id": [1, 2]}))
    write_deltalake(upstream, pa.table({"id": [3]}), mode="append")
    kit.ingest("mirror")
    assert [r["id"] for r in kit.rows("mirror", order_by="id")] == [1, 2]


def test_glob_matching_nothing_names_the_pattern(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("missing", {"type": "csv", "path": "landing/nowhere/*.csv"})],
        files={"landing/elsewhere/a.csv": "id\n1\n"},
    )
    with pytest.raises(NoFilesMatchedError, match=r"landing/nowhere/\*\.csv") as raised:
        kit.ingest("missing")
    assert str(kit.root / "landing/nowhere/*.csv") in str(raised.value)
    assert kit.version("missing") is None


def test_from_renames_raw_names_with_spaces_and_brackets(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "engines",
                {"type": "csv", "path": "landing/engines.csv"},
                columns=[
                    {"name": "truck_id", "from": "Truck ID", "type": "varchar", "required": True},
                    {"name": "engine_temp_c", "from": "Engine Temp [C]", "type": "double"},
                    {"name": "odd_name", "from": 'Weird "quoted" (name)', "type": "integer"},
                ],
            )
        ],
        files={"landing/engines.csv": 'Truck ID,Engine Temp [C],"Weird ""quoted"" (name)"\nT-1,88.5,7\nT-2,91.0,8\n'},
    )
    report = kit.ingest("engines")
    assert (report.rows_landed, report.rows_quarantined) == (2, 0)
    assert [name for name, _ in report.schema][:3] == ["truck_id", "engine_temp_c", "odd_name"]
    assert [data_columns(r) for r in kit.rows("engines", order_by="truck_id")] == [
        {"truck_id": "T-1", "engine_temp_c": 88.5, "odd_name": 7},
        {"truck_id": "T-2", "engine_temp_c": 91.0, "odd_name": 8},
    ]


def test_undeclared_columns_pass_through_in_snake_case(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "mixed",
                {"type": "csv", "path": "landing/mixed.csv"},
                columns=[{"name": "id", "from": "ID", "type": "integer"}],
            )
        ],
        files={"landing/mixed.csv": "ID,Air Temperature [K],rotationalSpeed,Tool-Wear (min)\n1,300.5,1500,12\n"},
    )
    report = kit.ingest("mixed")
    assert [name for name, _ in report.schema] == [
        "id",
        "air_temperature_k",
        "rotational_speed",
        "tool_wear_min",
        "_load_id",
        "_loaded_at",
        "_source_file",
    ]
    (row,) = kit.rows("mixed")
    assert data_columns(row) == {"id": 1, "air_temperature_k": 300.5, "rotational_speed": 1500, "tool_wear_min": 12}


def test_declared_column_missing_from_the_files_lists_the_columns_found(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "engines",
                {"type": "csv", "path": "landing/engines.csv"},
                columns=[{"name": "truck_id", "from": "Truck Id"}, {"name": "speed", "type": "double"}],
            )
        ],
        files={"landing/engines.csv": "Truck ID,Engine Temp [C]\nT-1,88.5\n"},
    )
    with pytest.raises(SchemaMismatchError) as raised:
        kit.ingest("engines")
    message = str(raised.value)
    assert "'truck_id' (from 'Truck Id')" in message
    assert "'speed'" in message
    assert "the files have: Truck ID, Engine Temp [C]" in message
    assert kit.version("engines") is None


@pytest.mark.parametrize(
    "content", [b"", b"\n", b"\r\n  \n", gzip.compress(b"")], ids=["0 bytes", "newline", "blank lines", "empty gz"]
)
def test_an_empty_csv_is_named_as_empty(make_workspace, spec, content):
    """Issue 14: it said 'declared columns not found; the files have: column0'."""
    name = "landing/orders.csv.gz" if content[:2] == b"\x1f\x8b" else "landing/orders.csv"
    kit = make_workspace(
        sources=[spec("orders", {"type": "csv", "path": "landing/orders.csv*"}, columns=[{"name": "id"}])],
        files={name: content},
    )
    with pytest.raises(EmptyFileError) as raised:
        kit.ingest("orders")
    message = str(raised.value)
    assert message.startswith(f"{name}: the file is empty")
    assert "column0" not in message
    assert "run again once it has" in message and "delete the file" in message  # what to do
    assert kit.version("orders") is None


def test_an_empty_csv_beside_others_is_read_as_no_rows(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("orders", {"type": "csv", "path": "landing/*.csv"}, columns=[{"name": "id", "type": "integer"}])],
        files={"landing/a.csv": "id\n1\n", "landing/b.csv": ""},
    )
    report = kit.ingest("orders")
    assert (report.files_loaded, report.rows_landed, report.reconciles) == (2, 1, True)


def test_two_raw_columns_that_collide_in_snake_case_are_refused(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("clash", {"type": "csv", "path": "landing/clash.csv"})],
        files={"landing/clash.csv": "Air Temp,air_temp\n1,2\n"},
    )
    with pytest.raises(SchemaMismatchError, match="both become 'air_temp'"):
        kit.ingest("clash")


def test_moved_workspace_does_not_land_its_files_again(make_workspace, spec, tmp_path):
    import shutil

    from foundation.core.workspace import Workspace
    from foundation.engine.ingest.runner import ingest_source

    kit = make_workspace(
        sources=[spec("events", {"type": "csv", "path": "landing/*.csv"})], files={"landing/a.csv": "id\n1\n2\n"}
    )
    assert kit.ingest("events").rows_landed == 2
    moved = tmp_path / "moved"
    shutil.copytree(kit.root, moved, copy_function=shutil.copy2)  # copy2 keeps the files' mtimes
    workspace = Workspace.open(moved)
    (source,) = workspace.sources()
    assert ingest_source(workspace, source).status == "nothing_new"


def test_env_variable_in_extract_path_is_resolved(make_workspace, spec, monkeypatch):
    monkeypatch.setenv("LANDING_DIR", "landing")
    kit = make_workspace(
        sources=[spec("events", {"type": "csv", "path": "${LANDING_DIR}/*.csv"})], files={"landing/a.csv": "id\n1\n"}
    )
    assert kit.ingest("events").rows_landed == 1
