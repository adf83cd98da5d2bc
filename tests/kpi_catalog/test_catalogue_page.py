"""The catalogue page in a real browser: uvicorn over a socket, headless Chromium (Debian's `chromium` package)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.dbt.conftest import copy_platform

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium (apt-get install -y chromium); never skipped in CI",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = copy_platform(tmp_path_factory.mktemp("catalogue") / "ws")
    demo = subprocess.run(
        [
            sys.executable,
            "-m",
            "foundation.cli.main",
            "--workspace",
            str(root),
            "demo",
            "--trucks",
            "4",
            "--days",
            "14",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    port = _free_port()
    code = (
        "import sys, uvicorn; from pathlib import Path; from kpi_catalog.web import create_app; "
        f"uvicorn.run(create_app(Path(sys.argv[1])), host='127.0.0.1', port={port}, log_level='warning')"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(root)], start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/v1/kpis", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("the catalogue server did not start") from None
                time.sleep(0.3)
        yield base
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    result = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    shutil.rmtree(profile, ignore_errors=True)
    return result


def test_kpi_page_renders_its_history_chart_against_target(server: str, tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", f"{server}/kpis/fleet_availability").stdout
    assert "<h1>Fleet availability" in dom
    assert '<polyline class="series"' in dom and 'class="target"' in dom and 'class="alert"' in dom
    assert dom.count('<circle class="point"') == 14  # one point per day of the demo
    assert "usecases/fleet_maintenance/sources/engine_telemetry.yaml" in dom  # lineage back to the source YAML
    screenshot = tmp_path / "kpi.png"
    chromium(tmp_path, "--window-size=1100,900", f"--screenshot={screenshot}", f"{server}/kpis/fleet_availability")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000


def test_list_page_searches(server: str, tmp_path: Path) -> None:
    everything = chromium(tmp_path, "--dump-dom", f"{server}/kpis").stdout
    assert "Mean time to repair" in everything and "Failure rate by machine type" in everything
    found = chromium(tmp_path, "--dump-dom", f"{server}/kpis?q=repair").stdout
    assert "Mean time to repair" in found and "Fleet availability" not in found


def test_json_routes_for_applications(server: str) -> None:
    with urllib.request.urlopen(f"{server}/v1/kpis/mttr_hours?grain=month") as response:
        kpi = json.load(response)
    assert kpi["grain"] == "month" and kpi["history"] and kpi["owner"] == "workshop@example.com"
    with urllib.request.urlopen(f"{server}/v1/kpis/fleet_availability?by=segment") as response:
        sliced = json.load(response)
    assert sliced["series"] and all(len(s["history"]) == 14 for s in sliced["series"])  # the demo's days, per segment
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{server}/v1/kpis/nope")
    assert missing.value.code == 404
    assert "known: " in json.load(missing.value)["detail"]
