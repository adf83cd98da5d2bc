"""Load modes on real files and real Delta tables: append, replace, merge, incremental cursor, new files only.

Every load's numbers must reconcile, and re-running a load must change nothing.
"""

from __future__ import annotations

import os

import pytest

from foundation.engine.connectors.landing_sql import SchemaMismatchError
from foundation.engine.lakehouse.bronze import BronzeTable

SMALL_BATCHES = {"ingest": {"batch_rows": 2}}  # several Arrow batches even for a few rows


def csv_text(header: str, rows: list[str]) -> str:
    return header + "\n" + "".join(f"{r}\n" for r in rows)


def touch_later(path) -> None:
    """Give a rewritten file a new mtime even on filesystems with coarse timestamps."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def data_rows(kit, name: str, columns: str, order_by: str = "ALL") -> list[tuple]:
    return [tuple(r.values()) for r in kit.query(f"SELECT {columns} FROM bronze.uc__{name} ORDER BY {order_by}")]


# -- append -------------------------------------------------------------------------------------------------------


@pytest.fixture
def append_kit(make_workspace, spec):
    return make_workspace(
        sources=[
            spec(
                "events",
                {"type": "csv", "path": "landing/events/*.csv"},
                columns=[{"name": "id", "type": "integer"}, {"name": "value", "type": "double"}],
            )
        ],
        files={"landing/events/day1.csv": csv_text("id,value", ["1,1.0", "2,2.0", "3,3.0"])},
        settings=SMALL_BATCHES,
    )


def test_append_rerun_of_the_same_files_lands_nothing_new(append_kit):
    first = append_kit.ingest("events")
    assert (first.status, first.rows_read, first.rows_landed, first.delta_version) == ("landed", 3, 3, 0)
    assert first.reconciles

    again = append_kit.ingest("events")
    assert (again.status, again.files_total, again.files_loaded, again.rows_read) == ("nothing_new", 1, 0, 0)
    assert again.delta_version == 0
    assert append_kit.version("events") == 0
    assert append_kit.count("events") == 3


def test_append_a_new_file_adds_only_its_rows(append_kit):
    first = append_kit.ingest("events")
    append_kit.land("landing/events/day2.csv", csv_text("id,value", ["4,4.0", "5,5.0"]))
    second = append_kit.ingest("events")
    assert (second.files_total, second.files_loaded, second.rows_read, second.rows_landed) == (2, 1, 2, 2)
    assert second.delta_version == 1
    rows = append_kit.rows("events", order_by="id")
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    by_load = {r["id"]: r["_load_id"] for r in rows}
    assert {by_load[i] for i in (1, 2, 3)} == {first.load_id}
    assert {by_load[i] for i in (4, 5)} == {second.load_id}
    assert append_kit.ingest("events").status == "nothing_new"
    assert append_kit.count("events") == 5


def test_load_state_is_committed_with_the_data(append_kit):
    append_kit.ingest("events")
    state = BronzeTable(append_kit.bronze_uri("events")).state()
    stat = os.stat(append_kit.root / "landing/events/day1.csv")
    # relative to the workspace root: a moved workspace does not land its files again
    assert state.files == {"landing/events/day1.csv": [stat.st_size, stat.st_mtime_ns]}


# -- replace ------------------------------------------------------------------------------------------------------


def test_replace_rerun_keeps_the_count_and_new_content_replaces_the_old(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("stock", {"type": "csv", "path": "landing/stock.csv"}, load={"mode": "replace"})],
        files={"landing/stock.csv": csv_text("sku,qty", ["a,1", "b,2", "c,3"])},
        settings=SMALL_BATCHES,
    )
    first = kit.ingest("stock")
    assert (first.status, first.rows_landed) == ("landed", 3)
    again = kit.ingest("stock")
    assert (again.status, again.rows_landed, again.delta_version) == ("landed", 3, 1)
    assert data_rows(kit, "stock", "sku, qty") == [("a", 1), ("b", 2), ("c", 3)]

    path = kit.land("landing/stock.csv", csv_text("sku,qty", ["b,20", "d,4"]))
    touch_later(path)
    third = kit.ingest("stock")
    assert third.rows_landed == 2
    assert data_rows(kit, "stock", "sku, qty") == [("b", 20), ("d", 4)]
    assert {r["_load_id"] for r in kit.rows("stock")} == {third.load_id}


# -- merge --------------------------------------------------------------------------------------------------------


def merge_spec(spec, **load):
    return spec(
        "customers",
        {"type": "csv", "path": "landing/customers/*.csv"},
        load={"mode": "merge", "primary_key": ["id"], **load},
        columns=[
            {"name": "id", "type": "integer", "required": True},
            {"name": "name", "type": "varchar"},
            {"name": "updated", "type": "timestamp"},
        ],
    )


def test_merge_updates_and_inserts_on_the_primary_key(make_workspace, spec):
    kit = make_workspace(
        sources=[merge_spec(spec)],
        files={
            "landing/customers/all.csv": csv_text(
                "id,name,updated", ["1,Ann,2024-01-01 00:00:00", "2,Bob,2024-01-01 00:00:00", "3,Cy,2024-01-01"]
            )
        },
        settings=SMALL_BATCHES,
    )
    first = kit.ingest("customers")
    assert (first.rows_landed, first.rows_inserted, first.rows_updated) == (3, 3, 0)

    path = kit.land(
        "landing/customers/all.csv",
        csv_text("id,name,updated", ["2,Bobby,2024-02-01 00:00:00", "4,Dee,2024-02-01 00:00:00"]),
    )
    touch_later(path)
    second = kit.ingest("customers")
    assert (second.rows_read, second.rows_landed, second.rows_inserted, second.rows_updated) == (2, 2, 1, 1)
    assert second.reconciles
    assert data_rows(kit, "customers", "id, name", order_by="id") == [(1, "Ann"), (2, "Bobby"), (3, "Cy"), (4, "Dee")]
    loads = {r["id"]: r["_load_id"] for r in kit.rows("customers")}
    assert (loads[1], loads[2], loads[4]) == (first.load_id, second.load_id, second.load_id)


def test_merge_duplicate_keys_in_one_load_newest_cursor_wins(make_workspace, spec):
    kit = make_workspace(
        sources=[merge_spec(spec, incremental={"cursor": "updated"})],
        files={
            "landing/customers/a.csv": csv_text(
                "id,name,updated",
                ["1,Ann v1,2024-01-01 00:00:00", "1,Ann v3,2024-01-03 00:00:00", "2,Bob,2024-01-01 00:00:00"],
            ),
            "landing/customers/b.csv": csv_text(
                "id,name,updated", ["1,Ann v2,2024-01-02 00:00:00", "3,Cy,2024-01-01 00:00:00"]
            ),
        },
        settings=SMALL_BATCHES,
    )
    report = kit.ingest("customers")
    assert (report.rows_read, report.rows_landed, report.rows_superseded) == (5, 3, 2)
    assert report.reconciles
    assert data_rows(kit, "customers", "id, name", order_by="id") == [(1, "Ann v3"), (2, "Bob"), (3, "Cy")]


def test_merge_duplicate_keys_without_cursor_the_last_file_wins(make_workspace, spec):
    kit = make_workspace(
        sources=[merge_spec(spec)],
        files={
            "landing/customers/2024-01.csv": csv_text("id,name,updated", ["1,Old,", "2,Bob,"]),
            "landing/customers/2024-02.csv": csv_text("id,name,updated", ["1,New,"]),
        },
    )
    report = kit.ingest("customers")
    assert (report.rows_read, report.rows_landed, report.rows_superseded) == (3, 2, 1)
    assert data_rows(kit, "customers", "id, name", order_by="id") == [(1, "New"), (2, "Bob")]


def test_merge_with_new_files_only(make_workspace, spec):
    kit = make_workspace(
        sources=[merge_spec(spec, incremental={"new_files_only": True})],
        files={"landing/customers/1.csv": csv_text("id,name,updated", ["1,Ann,", "2,Bob,"])},
        settings=SMALL_BATCHES,
    )
    kit.ingest("customers")
    again = kit.ingest("customers")
    assert (again.status, again.rows_read, again.delta_version) == ("nothing_new", 0, 0)

    kit.land("landing/customers/2.csv", csv_text("id,name,updated", ["2,Bobby,", "3,Cy,"]))
    third = kit.ingest("customers")
    assert (third.files_loaded, third.rows_read, third.rows_inserted, third.rows_updated) == (1, 2, 1, 1)
    assert data_rows(kit, "customers", "id, name", order_by="id") == [(1, "Ann"), (2, "Bobby"), (3, "Cy")]


# -- incremental cursor -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "values", "expected_cursor"),
    [
        ("timestamp", ["2024-01-01 10:00:00", "2024-01-01 12:00:00", "2024-01-01 11:00:00"], "2024-01-01T12:00:00"),
        ("date", ["2024-01-01", "2024-01-03", "2024-01-02"], "2024-01-03"),
        ("integer", ["10", "30", "20"], "30"),
    ],
)
def test_incremental_cursor_lands_only_newer_rows(make_workspace, spec, kind, values, expected_cursor):
    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/*.csv"},
                load={"mode": "append", "incremental": {"cursor": "at"}},
                columns=[{"name": "id", "type": "integer"}, {"name": "at", "type": kind}],
            )
        ],
        files={"landing/1.csv": csv_text("id,at", [f"1,{values[0]}", f"2,{values[1]}", f"3,{values[2]}"])},
        settings=SMALL_BATCHES,
    )
    first = kit.ingest("readings")
    assert first.rows_landed == 3
    assert BronzeTable(kit.bronze_uri("readings")).state().cursor == expected_cursor

    older, same = values[0], values[1]  # below, and equal to, the last cursor: both stale
    newer = {"timestamp": "2024-01-02 00:00:00", "date": "2024-01-09", "integer": "99"}[kind]
    kit.land("landing/2.csv", csv_text("id,at", [f"4,{older}", f"5,{same}", f"6,{newer}", f"7,{newer}"]))
    second = kit.ingest("readings")
    assert (second.rows_read, second.rows_landed, second.rows_stale) == (4, 2, 2)
    assert second.reconciles
    assert [r["id"] for r in kit.rows("readings", order_by="id")] == [1, 2, 3, 6, 7]
    assert BronzeTable(kit.bronze_uri("readings")).state().cursor.replace("T", " ") == newer


def test_incremental_cursor_with_merge_rereads_but_skips_stale_rows(make_workspace, spec):
    kit = make_workspace(
        sources=[merge_spec(spec, incremental={"cursor": "updated"})],
        files={"landing/customers/a.csv": csv_text("id,name,updated", ["1,Ann,2024-01-01", "2,Bob,2024-01-02"])},
    )
    kit.ingest("customers")
    kit.land("landing/customers/b.csv", csv_text("id,name,updated", ["1,Ann old,2023-12-01", "2,Bobby,2024-01-05"]))
    second = kit.ingest("customers")
    # a.csv is read again (merge without new_files_only): its 2 rows and b's older row are stale
    assert (second.rows_read, second.rows_stale, second.rows_landed, second.rows_updated) == (4, 3, 1, 1)
    assert second.reconciles
    assert data_rows(kit, "customers", "id, name", order_by="id") == [(1, "Ann"), (2, "Bobby")]
    third = kit.ingest("customers")
    assert (third.rows_read, third.rows_stale, third.rows_landed) == (4, 4, 0)
    assert data_rows(kit, "customers", "id, name", order_by="id") == [(1, "Ann"), (2, "Bobby")]


# -- idempotence --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "load",
    [
        {"mode": "append"},
        {"mode": "replace"},
        {"mode": "merge", "primary_key": ["id"]},
        {"mode": "merge", "primary_key": ["id"], "incremental": {"cursor": "at"}},
        {"mode": "merge", "primary_key": ["id"], "incremental": {"new_files_only": True}},
        {"mode": "append", "incremental": {"cursor": "at"}},
    ],
    ids=["append", "replace", "merge", "merge-cursor", "merge-new-files", "append-cursor"],
)
def test_rerunning_a_load_changes_nothing(make_workspace, spec, load):
    kit = make_workspace(
        sources=[
            spec(
                "things",
                {"type": "csv", "path": "landing/*.csv"},
                load=load,
                columns=[{"name": "id", "type": "integer"}, {"name": "at", "type": "date"}],
            )
        ],
        files={
            "landing/a.csv": csv_text("id,at,label", ["1,2024-01-01,x", "2,2024-01-02,y"]),
            "landing/b.csv": csv_text("id,at,label", ["3,2024-01-03,z"]),
        },
        settings=SMALL_BATCHES,
    )
    first = kit.ingest("things")
    assert first.rows_landed == 3
    before = data_rows(kit, "things", 'id, "at", label', order_by="id")
    for _ in range(2):
        report = kit.ingest("things")
        assert report.reconciles
        assert report.rows_quarantined == 0
        assert data_rows(kit, "things", 'id, "at", label', order_by="id") == before
    assert kit.count("things") == 3


def test_merge_row_without_a_key_is_quarantined_not_reinserted_by_each_run(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "keyed",
                {"type": "csv", "path": "landing/*.csv"},
                load={"mode": "merge", "primary_key": ["id"]},
                columns=[{"name": "id", "type": "integer"}],  # not marked required: the key makes it so
            )
        ],
        files={"landing/a.csv": "id,v\n1,a\n,b\n2,c\n"},
    )
    for _ in range(3):
        report = kit.ingest("keyed")
        assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (3, 2, 1)
        assert kit.count("keyed") == 2
    assert {q["_invalid_reason"] for q in kit.quarantine("keyed")} == {"id: required value is missing"}


def test_merge_key_of_an_undeclared_column_missing_from_the_data(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec("keyed", {"type": "csv", "path": "landing/*.csv"}, load={"mode": "merge", "primary_key": ["id"]})
        ],
        files={"landing/a.csv": "Key,v\n1,a\n"},
    )
    with pytest.raises(SchemaMismatchError, match=r"load refers to column\(s\) 'id' .* the columns are: key, v"):
        kit.ingest("keyed")
    assert kit.version("keyed") is None
