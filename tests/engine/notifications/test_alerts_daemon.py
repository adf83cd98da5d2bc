"""The alerts with the real `dagster-daemon` on the workspace's own instance: nobody evaluates a sensor by hand.

A planted failing blocking check (a load of 1 row under `min_rows: 3`) is run in process on the instance the daemon
watches; the daemon's `alerts_health` sensor sends exactly one webhook (to a local HTTP server) and one e-mail (to a
local aiosmtpd), nothing more on its following ticks, and one "resolved" on each channel after a good load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
from alert_receivers import WebhookReceiver, smtp_server

from foundation.core.workspace import WORKSPACE_ENV
from foundation.dagster_defs.definitions import ingestion_definitions
from foundation.dagster_defs.instance import prepare_home

pytestmark = pytest.mark.slow

DAEMON_WAIT_S = 180  # code location load + first tick on a loaded 2-core machine
INTERVAL_S = 5


def wait_for(condition: Callable[[], bool], what: str, daemon: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + DAEMON_WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        assert daemon.poll() is None, f"dagster-daemon exited:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen within {DAEMON_WAIT_S} s; daemon log:\n{log.read_text()[-3000:]}")


def health_ticks(log: Path) -> int:
    """Evaluations of the alerts_health sensor the daemon has logged so far."""
    return log.read_text().count("Sensor alerts_health skipped")


def test_the_daemon_alerts_once_and_says_when_it_recovered(make_workspace, spec, monkeypatch, tmp_path) -> None:
    with WebhookReceiver() as hook, smtp_server() as (smtp_port, inbox):
        monkeypatch.setenv("ALERT_HOOK_URL", hook.url)
        kit = make_workspace(
            sources=[
                spec("telemetry", {"type": "csv", "path": "landing/*.csv"}, checks=[{"completeness": {"min_rows": 3}}])
            ],
            files={"landing/a.csv": "truck_id,temp\nT1,80\n"},
            settings={
                "notifications": {
                    "interval_s": INTERVAL_S,
                    "channels": {
                        "ops": {"type": "webhook", "url": "${ALERT_HOOK_URL}"},
                        "owners": {"type": "email", "host": "127.0.0.1", "port": smtp_port,
                                   "from": "foundation@example.com", "starttls": False},
                    },
                    "rules": [{"channels": ["ops", "owners"], "events": ["blocking_check_failed"]}],
                }
            },
        )  # fmt: skip
        workspace = kit.open()
        home = prepare_home(workspace)
        ingestion = ingestion_definitions(workspace)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run = dg.materialize(list(ingestion.assets or []), resources=ingestion.resources, instance=instance,
                                 raise_on_error=False)  # fmt: skip
            assert not run.success

            log = tmp_path / "daemon.log"
            env = {**os.environ, "DAGSTER_HOME": str(home), WORKSPACE_ENV: str(workspace.root)}
            daemon_bin = Path(sys.executable).parent / "dagster-daemon"
            with log.open("w") as out:
                daemon = subprocess.Popen(
                    [str(daemon_bin), "run", "-m", "foundation.dagster_defs.workspace_defs"],
                    cwd=workspace.root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            try:
                wait_for(lambda: hook.bodies and inbox, "the first alert", daemon, log)
                assert hook.bodies[0]["status"] == "firing" and hook.bodies[0]["rule"] == "completeness"
                assert inbox[0][0] == ["data-team@example.com"]
                seen = health_ticks(log)
                wait_for(lambda: health_ticks(log) >= seen + 2, "two more ticks", daemon, log)  # still failing
                assert (len(hook.bodies), len(inbox)) == (1, 1)

                kit.land("landing/b.csv", "truck_id,temp\nT2,81\nT3,82\nT4,79\n")
                assert dg.materialize(list(ingestion.assets or []), resources=ingestion.resources,
                                      instance=instance).success  # fmt: skip
                wait_for(lambda: len(hook.bodies) >= 2 and len(inbox) >= 2, "the resolved message", daemon, log)
                seen = health_ticks(log)
                wait_for(lambda: health_ticks(log) >= seen + 1, "one more tick", daemon, log)  # still passing
                assert [b["status"] for b in hook.bodies] == ["firing", "resolved"]
                assert [str(m["Subject"]).strip()[:10] for _, m in inbox] == ["[FAILING] ", "[RESOLVED]"]
            finally:
                os.killpg(daemon.pid, signal.SIGTERM)
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(daemon.pid, signal.SIGKILL)
                    daemon.wait()
