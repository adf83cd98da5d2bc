"""kill -9 of `foundation ingest` at random moments loses and duplicates no row (issue 14).

Each iteration lands two new files, starts `foundation ingest`, sends it SIGKILL after a seeded random delay within
the time a whole run takes, then loads again and checks every file (crash_kit.assert_nothing_lost).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter

import pytest
from crash_kit import FOUNDATION, LOADS, Landing, assert_nothing_lost, rerun

from foundation.ingest.pending_quarantine import PendingQuarantine

pytestmark = pytest.mark.slow  # 13 runs of `foundation ingest`

ITERATIONS = 6


def test_kill_9_at_random_moments_loses_nothing(make_workspace, spec, crash_settings):
    rng = random.Random(14)
    landing = Landing(make_workspace, spec, crash_settings, LOADS["append"])
    landing.land(rows=300)
    started = time.perf_counter()
    rerun(landing.kit)
    window = time.perf_counter() - started  # how long a whole run takes on this machine, now
    outcomes: Counter[str] = Counter()
    for _ in range(ITERATIONS):
        landing.land(files=2, rows=300)
        process = subprocess.Popen(
            [FOUNDATION, "--workspace", str(landing.kit.root), "ingest"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 1.0) * window)
        process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=60)
        pending = PendingQuarantine(landing.kit.quarantine_uri("items")).load_ids()
        outcomes["finished before the kill" if code == 0 else "left a pending file" if pending else "killed"] += 1
        report = landing.kit.ingest("items")  # the re-run (in process: the kill is what needs a process)
        assert report.reconciles
        assert_nothing_lost(landing)
    rows = sum(len(v) + len(landing.invalid[f]) for f, v in landing.valid.items())
    print(f"kill -9: {ITERATIONS} iterations, {rows} rows in {len(landing.files)} files, {dict(outcomes)}")
