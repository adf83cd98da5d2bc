"""A load that fails half-way leaves bronze exactly as it was, and the next normal run lands everything once."""

from __future__ import annotations

import pytest

import foundation.engine.ingest.quarantine_writes as quarantine_writes
import foundation.engine.ingest.runner as runner
from foundation.engine.lakehouse.bronze import BronzeTable

SMALL_BATCHES = {"ingest": {"batch_rows": 2}}


class Crash(RuntimeError):
    pass


def crash_on_batch(number: int):
    """A progress callback (called once per batch read) that fails on batch `number`, after the earlier ones."""
    seen: list[int] = []

    def progress(rows_read: int) -> None:
        seen.append(rows_read)
        if len(seen) == number:
            raise Crash(f"crashed after {rows_read} rows")

    progress.seen = seen
    return progress


def csv_rows(first: int, last: int, tag: str = "v") -> str:
    return "id,label\n" + "".join(f"{i},{tag}{i}\n" for i in range(first, last + 1))


def snapshot(kit, name: str) -> list[dict]:
    return kit.rows(name, order_by="id")


@pytest.fixture
def kit_for(make_workspace, spec):
    def make(load: dict):
        return make_workspace(
            sources=[
                spec(
                    "items",
                    {"type": "csv", "path": "landing/*.csv"},
                    load=load,
                    columns=[{"name": "id", "type": "integer"}, {"name": "label", "type": "varchar"}],
                )
            ],
            files={"landing/a.csv": csv_rows(1, 3)},
            settings=SMALL_BATCHES,
        )

    return make


LOADS = [
    {"mode": "append"},
    {"mode": "replace"},
    {"mode": "merge", "primary_key": ["id"]},
]


@pytest.mark.parametrize("load", LOADS, ids=lambda load: load["mode"])
def test_crash_mid_stream_keeps_the_previous_version(kit_for, load):
    kit = kit_for(load)
    kit.ingest("items")
    before = snapshot(kit, "items")
    history_before = len(BronzeTable(kit.bronze_uri("items")).table().history())

    kit.land("landing/b.csv", csv_rows(2, 9, tag="new"))  # updates 2-3 (merge), adds 4-9
    progress = crash_on_batch(2)
    with pytest.raises(Crash, match="crashed after"):
        kit.ingest("items", progress=progress)
    assert len(progress.seen) == 2  # the first batch went to the writer before the crash

    assert kit.version("items") == 0
    assert len(BronzeTable(kit.bronze_uri("items")).table().history()) == history_before
    assert snapshot(kit, "items") == before

    report = kit.ingest("items")
    assert report.reconciles
    landed = [(r["id"], r["label"]) for r in kit.rows("items", order_by="id, label")]
    old, new = [(i, f"v{i}") for i in (1, 2, 3)], [(i, f"new{i}") for i in range(2, 10)]
    expected = {
        "append": sorted(old + new),  # the new file only, once
        "replace": sorted(old + new),  # both files, once
        "merge": [(1, "v1"), *new],  # the newer file wins on ids 2 and 3
    }[load["mode"]]
    assert landed == expected


def test_crash_on_the_first_load_leaves_no_table(kit_for):
    kit = kit_for({"mode": "append"})
    kit.land("landing/b.csv", csv_rows(4, 9))
    with pytest.raises(Crash):
        kit.ingest("items", progress=crash_on_batch(2))
    assert kit.version("items") is None
    assert kit.query("SELECT count(*) AS n FROM duckdb_views() WHERE view_name = 'uc__items'") == [{"n": 0}]
    report = kit.ingest("items")
    assert (report.rows_landed, report.delta_version) == (9, 0)
    assert [r["id"] for r in snapshot(kit, "items")] == list(range(1, 10))


def test_failure_at_the_end_of_the_stream_commits_nothing(kit_for, monkeypatch):
    """The last step of the stream (collecting CSV rejects) fails after every batch was handed to the writer."""
    kit = kit_for({"mode": "append"})
    kit.ingest("items")
    before = snapshot(kit, "items")
    kit.land("landing/b.csv", csv_rows(4, 9))

    def broken_rejects(con):
        raise Crash("reject tables unreadable")

    monkeypatch.setattr(runner, "csv_rejects", broken_rejects)
    with pytest.raises(Crash, match="reject tables unreadable"):
        kit.ingest("items")
    assert kit.version("items") == 0
    assert snapshot(kit, "items") == before

    monkeypatch.undo()
    report = kit.ingest("items")
    assert (report.files_loaded, report.rows_landed) == (1, 6)
    assert [r["id"] for r in snapshot(kit, "items")] == list(range(1, 10))


def test_quarantine_write_failure_after_the_commit_is_rolled_forward_by_the_next_run(kit_for, monkeypatch):
    """The bronze commit is the commit point: a quarantine write that fails after it keeps its rows pending."""
    kit = kit_for({"mode": "append"})
    kit.ingest("items")
    kit.land("landing/b.csv", "id,label\n4,ok4\nnot-a-number,bad\n5,ok5\n")

    def quarantine_down(self, rows, metadata=None):
        raise Crash("quarantine storage down")

    monkeypatch.setattr(BronzeTable, "append_rows", quarantine_down)
    with pytest.raises(runner.QuarantineWriteError, match=r"landed 2 rows .*quarantine storage down.*1 rows are kept"):
        kit.ingest("items")
    assert [r["id"] for r in snapshot(kit, "items")] == [1, 2, 3, 4, 5]
    assert BronzeTable(kit.bronze_uri("items")).state().files.keys() == {"landing/a.csv", "landing/b.csv"}

    monkeypatch.undo()
    report = kit.ingest("items")
    assert (report.status, report.notes) == ("nothing_new", {"quarantine_settled": 1})
    assert [r["id"] for r in snapshot(kit, "items")] == [1, 2, 3, 4, 5]
    assert [q["_raw_record"] for q in kit.quarantine("items")] == ['{"id":"not-a-number","label":"bad"}']
    assert kit.ingest("items").notes == {}
    assert len(kit.quarantine("items")) == 1


def test_a_failed_bronze_commit_leaves_no_pending_quarantine(kit_for, monkeypatch):
    """The invalid rows were written aside before the commit; the commit fails: they go, and the re-run redoes both."""
    kit = kit_for({"mode": "append"})
    kit.land("landing/a.csv", "id,label\n1,a\nx,b\n")

    def commit_refused(self, *args, **kwargs):
        for _ in args[0]:  # the writer reads the whole stream (the pending file is written at its end)...
            pass
        raise Crash("commit refused")  # ...then its commit fails

    monkeypatch.setattr(BronzeTable, "write", commit_refused)
    with pytest.raises(Crash):
        kit.ingest("items")
    assert kit.version("items") is None
    assert runner.PendingQuarantine(kit.quarantine_uri("items")).load_ids() == []
    monkeypatch.undo()
    report = kit.ingest("items")
    assert (report.rows_landed, report.rows_quarantined) == (1, 1)
    assert [r["id"] for r in snapshot(kit, "items")] == [1]
    assert len(kit.quarantine("items")) == 1


def test_incremental_cursor_is_not_advanced_by_a_failed_load(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "ticks",
                {"type": "csv", "path": "landing/*.csv"},
                load={"mode": "append", "incremental": {"cursor": "seq"}},
                columns=[{"name": "seq", "type": "integer"}],
            )
        ],
        files={"landing/a.csv": "seq\n1\n2\n"},
        settings=SMALL_BATCHES,
    )
    kit.ingest("ticks")
    kit.land("landing/b.csv", "seq\n3\n4\n5\n")
    with pytest.raises(Crash):
        kit.ingest("ticks", progress=crash_on_batch(2))
    assert BronzeTable(kit.bronze_uri("ticks")).state().cursor == "2"
    report = kit.ingest("ticks")
    assert (report.rows_landed, report.rows_stale) == (3, 0)
    assert [r["seq"] for r in kit.rows("ticks", order_by="seq")] == [1, 2, 3, 4, 5]


class Killed(BaseException):
    """Stands for kill -9 in process: not an Exception, so no `except Exception` clean-up runs on its way out."""


def test_a_crash_after_the_bronze_commit_loses_no_invalid_row(kit_for, monkeypatch):
    """Issue 14: killed between the bronze commit and the quarantine write, the invalid rows were lost for good."""
    kit = kit_for({"mode": "append"})
    kit.ingest("items")
    kit.land("landing/b.csv", "id,label\n4,ok4\nnot-a-number,bad\n5,ok5\n")

    def killed(self, rows, metadata=None):
        raise Killed

    monkeypatch.setattr(BronzeTable, "append_rows", killed)
    with pytest.raises(Killed):
        kit.ingest("items")
    assert [r["id"] for r in snapshot(kit, "items")] == [1, 2, 3, 4, 5]  # the bronze commit was made

    monkeypatch.undo()
    report = kit.ingest("items")
    assert report.status == "nothing_new"  # b.csv is recorded as landed: it is not read again...
    assert report.notes == {"quarantine_settled": 1}
    assert [q["_raw_record"] for q in kit.quarantine("items")] == ['{"id":"not-a-number","label":"bad"}']  # ...once
    assert kit.ingest("items").notes == {}
    assert len(kit.quarantine("items")) == 1


def test_a_partition_load_killed_after_its_bronze_commit_gets_its_quarantine_replaced_by_the_next_load(
    make_workspace, spec, monkeypatch
):
    """A partition's quarantine is replaced, not appended: the pending file keeps the window, and the settle replaces
    it (here the fixed file quarantines nothing, so the settle removes the partition's earlier row)."""
    from datetime import datetime, timedelta

    from foundation.engine.ingest.runner import ingest_source
    from foundation.engine.lakehouse.partitions import PartitionWindow

    def day(n: int) -> PartitionWindow:
        start = datetime(2026, 1, n)
        return PartitionWindow(key=f"2026-01-{n:02d}", start=start, end=start + timedelta(days=1))

    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/*.csv"},
                load={"mode": "replace"},
                columns=[{"name": "ts", "type": "timestamp", "required": True}, {"name": "value", "type": "double"}],
                partitions={"by": "daily", "column": "ts", "start": "2026-01-01"},
            )
        ],
        files={"landing/r.csv": "ts,value\n2026-01-02 01:00:00,1\n2026-01-02 02:00:00,bad\n"},
    )

    def load(n: int):
        return ingest_source(kit.open(), kit.source("readings"), partition=day(n))

    assert load(2).rows_quarantined == 1
    kit.land("landing/r.csv", "ts,value\n2026-01-02 01:00:00,1\n2026-01-02 02:00:00,2\n2026-01-03 01:00:00,x\n")

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(quarantine_writes, "replace_quarantine_partition", killed)
    with pytest.raises(Killed):
        load(2)  # bronze has both rows of day 2; the quarantine still the earlier load's row
    assert [q["_partition"] for q in kit.quarantine("readings")] == ["2026-01-02"]
    monkeypatch.undo()

    report = load(3)  # another partition's load settles the crashed one first
    assert report.notes["quarantine_settled"] == 0
    assert [(q["_partition"], q["_raw_record"]) for q in kit.quarantine("readings")] == [
        ("2026-01-03", '{"ts":"2026-01-03 01:00:00","value":"x"}')
    ]
    assert [r["value"] for r in kit.rows("readings", order_by="ts")] == [1.0, 2.0]
