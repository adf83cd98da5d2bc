"""The prediction log's spool (serving.spool) and its replay into Delta (serving.prediction_log): torn records after a
crash, exactly-once replay after a crash between the Delta commit and the spool's deletion (a real hard exit in a
subprocess), a spool left by a worker that is gone, group commit, and a spool that cannot be written (503)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from deltalake import DeltaTable
from fastapi import HTTPException

from foundation.core.workspace import Workspace
from serving.prediction_log import (
    PredictionLog,
    Served,
    decode_record,
    encode_record,
    feedback_uri,
    prepare,
    spool_root,
)
from serving.spool import HEADER, SpoolSlot, decode_frames, encode_frame

RISK = "fleet__risk"
REPO = Path(__file__).resolve().parents[2]


def served(n: int, request_id: str, model: str = RISK) -> Served:
    rows = [{"truck_type": "van", "temp": 90.0 + i, "note": "é\u2028"} for i in range(n)]
    predictions = [{"prediction_id": f"{request_id}-{i}", "prediction": i % 2 == 0, "score": i / 10} for i in range(n)]
    return Served(model, 2, request_id, "key-abc", 1_700_000_000.0, rows, predictions)


def record_all(log: PredictionLog, *items: Served) -> None:
    async def main() -> None:
        await asyncio.gather(*(log.record(item) for item in items))

    asyncio.run(main())


def logged_ids(workspace: Workspace, model: str = RISK) -> list[str]:
    uri = feedback_uri(workspace, model)
    if not DeltaTable.is_deltatable(uri):
        return []
    return DeltaTable(uri).to_pyarrow_table()["prediction_id"].to_pylist()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    (tmp_path / "foundation.yaml").write_text("{}\n", encoding="utf-8")
    return Workspace.open(tmp_path)


# -- frames -------------------------------------------------------------------------------------------------------


def test_a_torn_last_record_is_ignored_at_every_cut_and_the_ones_before_are_kept() -> None:
    payloads = [b"first", b"second record", b'{"third": [1, 2, 3]}']
    data = HEADER + b"".join(encode_frame(p) for p in payloads)
    last = len(data) - len(encode_frame(payloads[-1]))
    for cut in range(last, len(data)):  # a crash can stop the last write anywhere
        records, ignored = decode_frames(data[:cut])
        assert records == payloads[:2] and ignored == cut - last
    assert decode_frames(data) == (payloads, 0)


def test_a_bad_checksum_zeros_or_a_missing_header_stop_the_reading() -> None:
    good = HEADER + encode_frame(b"kept")
    flipped = bytearray(encode_frame(b"corrupt"))
    flipped[-1] ^= 0xFF
    assert decode_frames(good + bytes(flipped) + encode_frame(b"after")) == ([b"kept"], len(flipped) + 13)
    assert decode_frames(good + b"\0" * 64) == ([b"kept"], 64)  # a tail of zeros is not an empty record
    assert decode_frames(HEADER[:5]) == ([], 5)
    assert decode_frames(b"") == ([], 0)
    with pytest.raises(ValueError, match="empty"):
        encode_frame(b"")


def test_a_record_round_trips_through_its_spool_encoding() -> None:
    prepared = prepare(served(3, "r1"))
    assert decode_record(encode_record(prepared)) == prepared


# -- slots --------------------------------------------------------------------------------------------------------


def test_each_live_log_has_its_own_spool_and_the_setting_moves_them(tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("api: {prediction_spool_dir: spools}\n", encoding="utf-8")
    workspace = Workspace.open(tmp_path)
    assert spool_root(workspace) == tmp_path / "spools"
    first = PredictionLog(workspace, flush_s=600, flush_rows=1000, capacity=1000)
    second = PredictionLog(workspace, flush_s=600, flush_rows=1000, capacity=1000)  # a second worker process
    try:
        assert first.slot.folder == tmp_path / "spools" / "worker-0"
        assert second.slot.folder == tmp_path / "spools" / "worker-1"
        assert first.app_id != second.app_id
        assert SpoolSlot.try_claim(first.slot.folder) is None  # held
    finally:
        first.close()
        second.close()
    again = SpoolSlot.try_claim(first.slot.folder)  # released at close
    assert again is not None
    again.release()


def test_many_concurrent_requests_share_a_disk_flush(workspace: Workspace) -> None:
    log = PredictionLog(workspace, flush_s=600, flush_rows=100_000, capacity=100_000)
    record_all(log, *(served(1, f"r{i}") for i in range(200)))
    groups = log._writer.groups
    log.close()
    assert groups < 200
    assert len(logged_ids(workspace)) == 200


# -- crashes and replay -------------------------------------------------------------------------------------------

CHILD = """
import asyncio, os, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from foundation.core.workspace import Workspace
from serving import prediction_log
from serving.spool import SpoolSlot
from tests.serving.test_prediction_spool import served

log = prediction_log.PredictionLog(Workspace.open(Path({root!r})), flush_s=600, flush_rows=100_000, capacity=100_000)

async def main():
    await asyncio.gather(*(log.record(served(3, f"r{{i}}")) for i in range(40)))
    await log.record(served(2, "other", model="fleet__other"))

asyncio.run(main())
{crash}
"""

# after the Delta commits, before the spool's segments are deleted
CRASH_AFTER_COMMIT = "SpoolSlot.delete = lambda self, seqs: os._exit(9)\nlog.flush()"
# after the first model's commit, before the second's
CRASH_BETWEEN_TABLES = (
    "calls = []\n"
    "original = prediction_log.write_delta\n"
    "def once(*a, **k):\n"
    "    if calls: os._exit(9)\n"
    "    calls.append(1)\n"
    "    return original(*a, **k)\n"
    "prediction_log.write_delta = once\n"
    "log.flush()"
)
# mid-write: a half-written record at the end of the segment, then killed
CRASH_TORN = (
    "with open(log.slot.path(log._writer.seq), 'ab') as f:\n"
    "    f.write(b'\\x40\\x00\\x00\\x00\\x01\\x02\\x03\\x04{\"half')\n"
    "os._exit(9)"
)


def run_child(root: Path, crash: str) -> None:
    code = textwrap.dedent(CHILD).format(repo=str(REPO), root=str(root), crash=crash)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr[-3000:]


@pytest.mark.parametrize(
    "crash",
    [CRASH_AFTER_COMMIT, CRASH_BETWEEN_TABLES, CRASH_TORN],
    ids=["after-commit", "between-tables", "torn-write"],
)
def test_a_crash_at_each_step_loses_nothing_and_the_replay_duplicates_nothing(
    workspace: Workspace, crash: str, caplog: pytest.LogCaptureFixture
) -> None:
    run_child(workspace.root, crash)
    expected = sorted(f"r{i}-{j}" for i in range(40) for j in range(3))
    with caplog.at_level(logging.INFO, logger="serving.prediction_log"):
        log = PredictionLog(workspace, flush_s=600, flush_rows=100_000, capacity=100_000)  # replays at start-up
    assert sorted(logged_ids(workspace)) == expected  # each once, before anything is served
    assert sorted(logged_ids(workspace, "fleet__other")) == ["other-0", "other-1"]
    if crash == CRASH_TORN:
        assert "ignored (a write cut by a crash" in caplog.text
    segments = log.slot.segments()
    assert len(segments) == 1 and log.slot.path(segments[0]).stat().st_size == len(HEADER)  # the replayed ones gone
    log.close()
    reopened = PredictionLog(workspace, flush_s=600, flush_rows=100_000, capacity=100_000)  # a second replay: no-op
    reopened.close()
    assert sorted(logged_ids(workspace)) == expected
    assert reopened.replayed == 0


def test_a_spool_left_by_a_worker_that_is_gone_is_replayed_by_the_next_start(workspace: Workspace) -> None:
    first = PredictionLog(workspace, flush_s=600, flush_rows=100_000, capacity=100_000)
    gone = PredictionLog(workspace, flush_s=600, flush_rows=100_000, capacity=100_000)  # worker-1
    record_all(gone, served(4, "gone"))
    gone._stop = True  # as kill -9 leaves it: nothing flushed, the lock dropped with the process
    gone._writer.stop()
    gone._writer.close_file()
    gone.slot.release()
    first.close()
    assert logged_ids(workspace) == []
    restarted = PredictionLog(workspace, flush_s=600, flush_rows=100_000, capacity=100_000)  # one worker now
    assert restarted.slot.folder.name == "worker-0" and restarted.replayed == 4
    restarted.close()
    assert sorted(logged_ids(workspace)) == ["gone-0", "gone-1", "gone-2", "gone-3"]


def test_a_lakehouse_that_fails_keeps_the_spool_and_the_next_flush_writes_it_once(workspace: Workspace) -> None:
    log = PredictionLog(workspace, flush_s=600, flush_rows=100_000, capacity=100_000)
    record_all(log, served(3, "a"))
    blocker = Path(feedback_uri(workspace, RISK))
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")  # the table cannot be created
    assert log.flush() == 0
    assert log.slot.segments()[:-1]  # the sealed segment stays
    record_all(log, served(1, "b"))
    blocker.unlink()
    log.close()
    assert sorted(logged_ids(workspace)) == ["a-0", "a-1", "a-2", "b-0"]


def test_a_spool_that_cannot_be_written_refuses_the_request_with_a_503_then_recovers(workspace: Workspace) -> None:
    log = PredictionLog(workspace, flush_s=600, flush_rows=100_000, capacity=100_000)
    record_all(log, served(1, "before"))
    writer = log._writer
    read_only = os.open(log.slot.path(writer.seq), os.O_RDONLY)
    os.dup2(read_only, writer._fd)  # the next write fails (EBADF), as a full or broken disk would
    os.close(read_only)
    with pytest.raises(HTTPException) as refused:
        record_all(log, served(2, "lost"))
    assert refused.value.status_code == 503 and "not answered" in refused.value.detail
    assert log.refused == 2
    record_all(log, served(1, "after"))  # a new segment: the one that failed is never appended to again
    log.close()
    assert sorted(logged_ids(workspace)) == ["after-0", "before-0"]
