"""kill -9 of `foundation ingest` at random moments loses and duplicates no row (issue 14).

Each iteration lands two new files, starts `foundation ingest` and sends it SIGKILL after a seeded random delay:
from its start (within the time a whole run takes), or, every other iteration, from the moment the Delta writer
wrote its first Parquet part (within 0.2 s: the stream, the pending file, the commits). Then it loads again and
checks every file (crash_kit.assert_nothing_lost).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from crash_kit import FOUNDATION, LOADS, Landing, assert_nothing_lost, committed_loads, rerun

from foundation.engine.ingest.pending_quarantine import PendingQuarantine

pytestmark = pytest.mark.slow  # 9 runs of `foundation ingest` (2-3 s each), 8 of them killed

ITERATIONS = 8


def parquet_parts(kit) -> int:
    return len(list(Path(kit.bronze_uri("items")).glob("*.parquet")))


def kill_at(process: subprocess.Popen, moment: float, kit, after_first_part: bool) -> None:
    """SIGKILL `moment` seconds after the start, or after the writer's first new Parquet part (so that kills also
    fall between the first batch and the commits, not only in the seconds of imports before the load)."""
    if after_first_part:
        parts = parquet_parts(kit)
        while parquet_parts(kit) == parts and process.poll() is None:
            time.sleep(0.002)
    time.sleep(moment)
    process.send_signal(signal.SIGKILL)


def test_kill_9_at_random_moments_loses_nothing(make_workspace, spec, crash_settings):
    rng = random.Random(14)
    landing = Landing(make_workspace, spec, crash_settings, LOADS["append"])
    landing.land(rows=2000)
    started = time.perf_counter()
    rerun(landing.kit)
    window = time.perf_counter() - started  # how long a whole run takes on this machine, now
    outcomes: Counter[str] = Counter()
    for iteration in range(ITERATIONS):
        loads = len(committed_loads(landing.kit, "items"))
        landing.land(files=2, rows=2000)
        process = subprocess.Popen(
            [FOUNDATION, "--workspace", str(landing.kit.root), "ingest"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        after_first_part = iteration % 2 == 1
        kill_at(process, rng.uniform(0, 0.2 if after_first_part else window), landing.kit, after_first_part)
        code = process.wait(timeout=60)
        pending = PendingQuarantine(landing.kit.quarantine_uri("items")).load_ids()
        committed = len(committed_loads(landing.kit, "items")) > loads
        outcomes[
            "finished before the kill"
            if code == 0
            else "killed after the bronze commit, quarantine pending"
            if committed and pending
            else "killed after the bronze commit and the quarantine write"
            if committed
            else "killed before the bronze commit"
        ] += 1
        report = landing.kit.ingest("items")  # the re-run (in process: the kill is what needs a process)
        assert report.reconciles
        assert_nothing_lost(landing)
    rows = sum(len(v) + len(landing.invalid[f]) for f, v in landing.valid.items())
    print(f"kill -9: {ITERATIONS} iterations, {rows} rows in {len(landing.files)} files, {dict(outcomes)}")
