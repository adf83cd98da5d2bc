"""A partition load reads only its window and replaces exactly that window, bronze and quarantine, in one commit."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest

from foundation.engine.ingest.runner import ingest_source
from foundation.engine.lakehouse.bronze import BronzeTable
from foundation.engine.lakehouse.partitions import PartitionWindow

COLUMNS = [
    {"name": "ts", "type": "timestamp", "required": True},
    {"name": "sensor", "type": "varchar"},
    {"name": "value", "type": "double"},
]


def day(n: int) -> PartitionWindow:
    start = datetime(2026, 1, n)
    return PartitionWindow(key=start.strftime("%Y-%m-%d"), start=start, end=start + timedelta(days=1))


def readings(days: range, tag: str = "a", per_day: int = 4) -> str:
    """`per_day` readings a day (every 6 hours), value = day * 100 + hour, sensor = tag."""
    lines = ["ts,sensor,value"]
    for d in days:
        for hour in range(0, 24, 24 // per_day):
            lines.append(f"2026-01-{d:02d} {hour:02d}:00:00,{tag},{d * 100 + hour}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def column_kit(make_workspace, spec):
    partitions = {"by": "daily", "column": "ts", "start": "2026-01-01"}
    return make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/readings/*.csv"},
                load={"mode": "replace"},
                columns=COLUMNS,
                partitions=partitions,
            )
        ],
        files={"landing/readings/all.csv": readings(range(1, 6))},
    )


def load(kit, window: PartitionWindow, name: str = "readings", progress=None):
    return ingest_source(kit.open(), kit.source(name), progress, partition=window)


def per_day(kit, name: str = "readings") -> dict[str, int]:
    rows = kit.query(f"SELECT strftime(ts, '%Y-%m-%d') AS d, count(*) AS n FROM bronze.uc__{name} GROUP BY 1")
    return {r["d"]: r["n"] for r in rows}


def test_a_partitioned_source_refuses_a_whole_load(column_kit):
    with pytest.raises(ValueError, match=r"is partitioned by daily partitions: .*foundation backfill uc/readings"):
        ingest_source(column_kit.open(), column_kit.source("readings"))


def test_a_partition_load_lands_only_its_window(column_kit):
    report = load(column_kit, day(2))
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (4, 4, 0)
    assert report.reconciles
    assert per_day(column_kit) == {"2026-01-02": 4}
    assert sorted(r["value"] for r in column_kit.rows("readings")) == [200.0, 206.0, 212.0, 218.0]


def test_reloading_a_partition_replaces_it_in_one_commit_and_leaves_the_others(column_kit):
    for n in (1, 2, 3):
        load(column_kit, day(n))
    assert per_day(column_kit) == {"2026-01-01": 4, "2026-01-02": 4, "2026-01-03": 4}
    others_before = column_kit.query("SELECT * FROM bronze.uc__readings WHERE ts::date <> '2026-01-02' ORDER BY ALL")
    version_before = column_kit.version("readings")

    # The source now has 2 readings on day 2, with other values: the re-load must replace, not add.
    column_kit.land("landing/readings/all.csv", readings(range(1, 2)) + readings(range(2, 3), "b", 2)[15:])
    report = load(column_kit, day(2))

    assert column_kit.version("readings") == version_before + 1  # one commit
    commit = BronzeTable(column_kit.bronze_uri("readings")).table().history(limit=1)[0]
    assert commit["operation"] == "WRITE" and "ts >= " in commit["operationParameters"]["predicate"]
    assert commit["foundation.partition"] == "2026-01-02"
    assert report.rows_landed == 2
    assert per_day(column_kit) == {"2026-01-01": 4, "2026-01-02": 2, "2026-01-03": 4}
    day2 = column_kit.query("SELECT sensor, value FROM bronze.uc__readings WHERE ts::date = '2026-01-02' ORDER BY 2")
    assert day2 == [{"sensor": "b", "value": 200.0}, {"sensor": "b", "value": 212.0}]
    assert column_kit.query("SELECT * FROM bronze.uc__readings WHERE ts::date <> '2026-01-02' ORDER BY ALL") == (
        others_before
    )


def test_quarantine_rows_of_a_partition_are_replaced_too(column_kit):
    bad = "2026-01-02 03:00:00,a,not-a-number\n2026-01-03 03:00:00,a,also-bad\n"
    column_kit.land("landing/readings/all.csv", readings(range(1, 6)) + bad)
    for _ in range(2):  # the second load replaces the first one's quarantine row
        report = load(column_kit, day(2))
        assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (5, 4, 1)
    load(column_kit, day(3))
    quarantine = column_kit.quarantine("readings")
    assert sorted((q["_partition"], q["_invalid_reason"]) for q in quarantine) == [
        ("2026-01-02", "value: cannot read 'not-a-number' as double"),
        ("2026-01-03", "value: cannot read 'also-bad' as double"),
    ]

    column_kit.land("landing/readings/all.csv", readings(range(1, 6)))  # fixed at the source
    report = load(column_kit, day(2))
    assert report.rows_quarantined == 0
    assert [q["_partition"] for q in column_kit.quarantine("readings")] == ["2026-01-03"]


def test_a_row_without_a_partition_value_is_quarantined_not_skipped(column_kit):
    column_kit.land("landing/readings/all.csv", readings(range(2, 3)) + "yesterday,a,1\n")
    report = load(column_kit, day(2))
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (5, 4, 1)
    (row,) = column_kit.quarantine("readings")
    assert row["_invalid_reason"] == "ts: cannot read 'yesterday' as timestamp"


class Crash(RuntimeError):
    pass


def test_a_crash_during_a_partition_replace_leaves_the_previous_version(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "csv", "path": "landing/readings/*.csv"},
                load={"mode": "replace"},
                columns=COLUMNS,
                partitions={"by": "daily", "column": "ts", "start": "2026-01-01"},
            )
        ],
        files={"landing/readings/all.csv": readings(range(1, 4))},
        settings={"ingest": {"batch_rows": 2}},
    )
    load(kit, day(1))
    load(kit, day(2))
    before, version = kit.rows("readings", order_by="ts"), kit.version("readings")

    kit.land("landing/readings/all.csv", readings(range(1, 4), "new"))
    batches: list[int] = []

    def crash_on_second_batch(rows_read: int) -> None:
        batches.append(rows_read)
        if len(batches) == 2:
            raise Crash("killed half-way through the partition")

    with pytest.raises(Crash):
        load(kit, day(2), progress=crash_on_second_batch)
    assert kit.version("readings") == version
    assert kit.rows("readings", order_by="ts") == before

    load(kit, day(2))  # the re-run replaces the partition once
    assert per_day(kit) == {"2026-01-01": 4, "2026-01-02": 4}
    assert {r["sensor"] for r in kit.query("SELECT sensor FROM bronze.uc__readings WHERE ts::date = '2026-01-02'")} == {
        "new"
    }


def test_file_name_partitions_read_only_the_files_of_the_window(make_workspace, spec):
    files = {f"landing/t/telemetry_2026-01-{d:02d}.csv": readings(range(d, d + 1)) for d in (1, 2, 3)}
    files["landing/t/telemetry_latest.csv"] = readings(range(9, 10))  # no date in its name: in no partition
    kit = make_workspace(
        sources=[
            spec(
                "telemetry",
                {"type": "csv", "path": "landing/t/*.csv"},
                load={"mode": "replace"},
                columns=COLUMNS,
                partitions={
                    "by": "daily",
                    "start": "2026-01-01",
                    "file_name": r"telemetry_(?P<date>\d{4}-\d{2}-\d{2})\.csv",
                },
            )
        ],
        files=files,
    )
    report = load(kit, day(2), "telemetry")
    assert (report.files_total, report.files_loaded, report.rows_landed) == (4, 1, 4)
    load(kit, day(3), "telemetry")
    load(kit, day(2), "telemetry")
    rows = kit.query(
        "SELECT strftime(_partition_time, '%Y-%m-%d') AS p, count(*) AS n, min(_source_file) AS f "
        "FROM bronze.uc__telemetry GROUP BY 1 ORDER BY 1"
    )
    assert [(r["p"], r["n"], r["f"].rsplit("/", 1)[-1]) for r in rows] == [
        ("2026-01-02", 4, "telemetry_2026-01-02.csv"),
        ("2026-01-03", 4, "telemetry_2026-01-03.csv"),
    ]
    assert load(kit, day(5), "telemetry").status == "nothing_new"  # no file of that day


KILLED_WRITER = """
import sys, time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from foundation.engine.lakehouse.bronze import BronzeTable
from foundation.engine.lakehouse.partitions import PartitionWindow, replace_partition
from foundation.core.workspace import Workspace

root, marker = Path(sys.argv[1]), Path(sys.argv[2])
workspace = Workspace.open(root)
(source,) = workspace.sources()
bronze = BronzeTable(workspace.bronze_uri("uc", "readings"))
schema = bronze.schema()
row = {"ts": datetime(2026, 1, 2, 5), "sensor": "killed", "value": 1.0, "_load_id": "killed",
       "_loaded_at": datetime.now(UTC), "_source_file": "none"}

def batches():
    yield pa.RecordBatch.from_pylist([row] * 1000, schema=schema)
    marker.touch()  # the writer has the first batch: the replace is under way
    time.sleep(600)

window = PartitionWindow("2026-01-02", datetime(2026, 1, 2), datetime(2026, 1, 3))
replace_partition(bronze, pa.RecordBatchReader.from_batches(schema, batches()), source.spec, window, bronze.state())
"""


def test_a_kill_9_during_a_partition_replace_leaves_the_previous_version(column_kit, tmp_path):
    load(column_kit, day(1))
    load(column_kit, day(2))
    before, version = column_kit.rows("readings", order_by="ts"), column_kit.version("readings")
    marker = tmp_path / "writing"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(column_kit.root), str(marker)])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), f"the writer did not start (exit code {writer.poll()})"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert column_kit.version("readings") == version
    assert column_kit.rows("readings", order_by="ts") == before
    load(column_kit, day(2))  # the table still takes a partition replace
    assert per_day(column_kit) == {"2026-01-01": 4, "2026-01-02": 4}


JANUARY = (datetime(2026, 1, 1), datetime(2026, 2, 1))
JANUARY_31 = (datetime(2026, 1, 31), datetime(2026, 2, 1))


@pytest.mark.parametrize(
    ("column_type", "by", "window", "rows", "landed"),
    [
        # a date column, monthly partitions: January's rows
        ("date", "monthly", JANUARY, "2026-01-15,1\n2026-01-31,2\n2026-02-01,3\n", [1, 2]),
        # a timestamptz column, daily partitions in UTC: 00:30 on 1 February at +01:00 is 31 January, 23:30 UTC
        (
            "timestamptz",
            "daily",
            JANUARY_31,
            "2026-01-30T23:30:00+00:00,1\n2026-01-31T23:30:00+00:00,2\n2026-02-01T00:30:00+01:00,3\n"
            "2026-02-01T00:30:00+00:00,4\n",
            [2, 3],
        ),
    ],
    ids=["date-monthly", "timestamptz-daily"],
)
def test_date_and_timestamptz_partition_columns(make_workspace, spec, column_type, by, window, rows, landed):
    kit = make_workspace(
        sources=[
            spec(
                "events",
                {"type": "csv", "path": "landing/*.csv"},
                load={"mode": "replace"},
                columns=[{"name": "ts", "type": column_type, "required": True}, {"name": "value", "type": "integer"}],
                partitions={"by": by, "column": "ts", "start": "2026-01-01"},
            )
        ],
        files={"landing/events.csv": "ts,value\n" + rows},
    )
    for _ in range(2):  # the second load replaces the first
        report = ingest_source(kit.open(), kit.source("events"), partition=PartitionWindow("p", *window))
        assert (report.rows_landed, report.rows_quarantined) == (len(landed), 0)
    assert sorted(r["value"] for r in kit.rows("events")) == landed
