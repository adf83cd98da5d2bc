"""The README's main command, end to end, as a user runs it: `foundation demo` in a workspace copy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOUNDATION = [sys.executable, "-m", "foundation.cli.main"]


def _copy_workspace(tmp_path: Path) -> Path:
    shutil.copy(REPO / "foundation.yaml", tmp_path / "foundation.yaml")
    shutil.copytree(REPO / "usecases", tmp_path / "usecases")
    ignore = shutil.ignore_patterns("_generated", "target", "logs")
    shutil.copytree(REPO / "dbt_project", tmp_path / "dbt_project", ignore=ignore)
    return tmp_path


def _run(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FOUNDATION, "--workspace", str(workspace), *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_demo_end_to_end_lands_every_source_and_reconciles(tmp_path: Path) -> None:
    workspace = _copy_workspace(tmp_path)
    result = _run(workspace, "demo", "--trucks", "12", "--days", "21", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    envelope = json.loads(result.stdout)
    assert (envelope["ok"], envelope["errors"]) == (True, [])
    demo = envelope["data"]
    # no third-party chatter on the console: MLflow's INFO lines and notices go to the workspace's logs
    for chatter in ("Detected uv project", "already exists. Creating a new version"):
        assert chatter not in result.stderr, result.stderr[-3000:]
    reports = {r["source"]: r for r in demo["reports"]}
    assert set(reports) == {
        "fleet_maintenance/engine_telemetry",
        "fleet_maintenance/trucks",
        "fleet_maintenance/maintenance",
        "fleet_maintenance/failures",
        "fleet_maintenance/depots",  # scraped from the demo's local depot page (html_table)
        "machine_failure/ai4i_readings",
    }
    assert all(r["reconciles"] for r in reports.values())
    telemetry = reports["fleet_maintenance/engine_telemetry"]
    assert telemetry["rows_read"] == demo["landing_rows"]["telemetry"] == 12 * 21 * 24
    # quarantined: the dump's broken rows (parse/type) and its sensor glitches (the `between` rule)
    planted = demo["landing_bad_rows"]["telemetry"] + demo["landing_glitch_rows"]["telemetry"]
    assert telemetry["rows_quarantined"] == planted > 0
    assert reports["machine_failure/ai4i_readings"]["rows_landed"] == 10_000
    # maintenance and failures come from the demo's workshop REST API (paginated, token-protected), every record
    for name in ("maintenance", "failures"):
        report = reports[f"fleet_maintenance/{name}"]
        assert report["rows_landed"] == demo["landing_rows"][name] and report["notes"]["origin"].startswith("http://")
    # The learnable signal survives ingestion: engine temperature is higher in the 48 h before failures.
    by_period = {row[0]: row for row in demo["signal"]}
    assert by_period["48 h before a failure"][2] > by_period["other hours"][2] + 3

    # Re-running the demo (same files regenerated) makes no duplicates.
    again = _run(workspace, "demo", "--trucks", "12", "--days", "21", "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    count = _run(workspace, "sql", "--json", "select count(*) as n from bronze.fleet_maintenance__engine_telemetry")
    assert json.loads(count.stdout)["data"] == [{"n": telemetry["rows_landed"]}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ui_serves_the_asset_graph(tmp_path: Path) -> None:
    workspace = _copy_workspace(tmp_path)
    port = _free_port()
    env = {**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1"}
    process = subprocess.Popen(
        [*FOUNDATION, "--workspace", str(workspace), "ui", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        preexec_fn=_ignore_stop_signals,  # as a background job gets them: `foundation ui` must still stop
    )
    query = json.dumps({"query": "{ assetNodes { assetKey { path } groupName } }"}).encode()
    try:
        deadline = time.monotonic() + 120
        nodes = None
        while time.monotonic() < deadline and nodes is None:
            time.sleep(1)
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", data=query, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    data = json.load(response)
                nodes = data["data"]["assetNodes"] or None
            except (OSError, KeyError, TypeError):
                continue
        assert nodes, "the Dagster UI did not serve the asset graph within 120 s"
        keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
        assert "fleet_maintenance/bronze/engine_telemetry" in keys
        assert "machine_failure/bronze/ai4i_readings" in keys
        process.terminate()  # SIGTERM to `foundation ui` alone, as a supervisor sends it: it stops its children
        assert process.wait(timeout=45) == 0
        assert _group_ends(process.pid, within_s=45), "Dagster processes outlived `foundation ui`"
    finally:
        if process.poll() is None or not _group_ends(process.pid, within_s=0):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _group_ends(group: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
