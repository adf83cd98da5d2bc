"""kill -9 of `foundation serve` (two workers) under 32 concurrent clients, then a restart with one worker: every
prediction a client received is in the Delta log exactly once (issue 14, defect 2: the log was at-most-once)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from foundation.core.workspace import Workspace
from serving.prediction_log import feedback_uri, spool_root
from tests.serving.conftest import ALL_KEY, RISK
from tests.serving.server import Server, call

pytestmark = pytest.mark.slow

CLIENTS = 32
# small, frequent Delta writes: the kill lands before, during or after one (and the spool holds the rest)
FLUSHING = {"FOUNDATION_API__PREDICTION_LOG_FLUSH_S": "0.5", "FOUNDATION_API__PREDICTION_LOG_FLUSH_ROWS": "200"}


class Clients:
    """`CLIENTS` threads calling predict in a loop; the prediction ids of every answer received, in full."""

    def __init__(self, base: str, instances: list[dict[str, Any]]) -> None:
        self.url = f"{base}/v1/models/{RISK}/predict"
        self.instances = instances
        self.answered: list[str] = []
        self.failed: Counter[int] = Counter()  # status (0: no answer) -> requests
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(CLIENTS)]

    def _loop(self, i: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            body = {"instances": self.instances[: 1 + (i + n) % 2]}  # one or two rows
            try:
                status, answer = call(self.url, body, key=ALL_KEY, timeout=30)
            except Exception:  # the server was killed mid-request: no answer received
                status, answer = 0, None
            with self._lock:
                if status == 200:
                    self.answered.extend(p["prediction_id"] for p in answer["predictions"])
                else:
                    self.failed[status] += 1

    def count(self) -> int:
        with self._lock:
            return len(self.answered)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def test_kill_9_under_load_then_restart_logs_every_answered_prediction_exactly_once(
    own_workspace: Path, instances: list[dict]
) -> None:
    workspace = Workspace.open(own_workspace)
    server = Server(own_workspace, FLUSHING, workers=2)
    try:
        server.wait_ready()
        started = time.monotonic()  # each worker loads the models on its own: wait for both, not the first
        while server.log().count("Application startup complete") < 2:
            assert time.monotonic() - started < 300, server.log()[-3000:]
            time.sleep(0.2)
        clients = Clients(server.base, instances)
        clients.start()
        deadline = time.monotonic() + 120
        while clients.count() < 2_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        server.kill()  # mid-load: requests in flight, a Delta write maybe half done, the spools not empty
        clients.stop()
    finally:
        log = server.stop()[-3000:]
    answered = clients.answered
    assert len(answered) >= 500, f"too few answers to mean anything: {len(answered)}, failed {clients.failed}:\n{log}"
    spools = sorted(p.name for p in spool_root(workspace).iterdir())
    assert spools == ["worker-0", "worker-1"]  # one spool per worker process
    uri = feedback_uri(workspace, RISK)
    before = DeltaTable(uri).to_pyarrow_table()["prediction_id"].to_pylist() if Path(uri).exists() else []
    assert set(answered) - set(before), "the kill left nothing to replay: the test proves nothing"

    with Server(own_workspace, workers=1) as restarted:  # one worker: it replays worker-1's spool too
        restarted.wait_ready()
        logged = DeltaTable(uri).to_pyarrow_table()["prediction_id"].to_pylist()
    lost = set(answered) - set(logged)
    duplicated = {pid: n for pid, n in Counter(logged).items() if n > 1}
    print(  # the figures for docs/reliability.md (pytest -s)
        f"answered {len(answered)}, in Delta at the kill {len(set(answered) & set(before))}, "
        f"after the restart {len(set(answered) & set(logged))}, rows {len(logged)}, failed requests {clients.failed}"
    )
    assert not lost, f"{len(lost)} of {len(answered)} answered predictions lost"
    assert not duplicated, f"{len(duplicated)} prediction ids logged more than once"
    replayed = [line for line in restarted.log_lines() if "replayed from the spool" in str(line.get("message"))]
    assert replayed, restarted.log()[-3000:]
