"""`foundation demo serve`: the demo's workshop API and depot page outside `foundation demo`, over real sockets.

The serve command runs as a real process; `foundation ingest` runs as another, against it, and lands real Delta
tables. Without the services, the errors a user meets name the command to run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.workspace import WORKSPACE_ENV
from foundation.demo.fleet_data import DEPOTS, FleetSize, generate_fleet_landing
from foundation.demo.serve import SERVED_ENV, export_lines, missing_files

REPO = Path(__file__).resolve().parents[2]
SERVED_SOURCES = ("maintenance", "failures", "depots")
FOUNDATION = [sys.executable, "-m", "foundation.cli.main"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The fleet_maintenance use case (its real source YAML), with a small fleet's landing files."""
    root = tmp_path / "ws"
    (root / "usecases" / "fleet_maintenance").mkdir(parents=True)
    shutil.copy(REPO / "foundation.yaml", root / "foundation.yaml")
    shutil.copytree(REPO / "usecases/fleet_maintenance/sources", root / "usecases/fleet_maintenance/sources")
    shutil.copy(REPO / "usecases/fleet_maintenance/usecase.yaml", root / "usecases/fleet_maintenance/usecase.yaml")
    generate_fleet_landing(root / "landing" / "fleet_maintenance", FleetSize(trucks=8, days=20, seed=3))
    return root


def _env_without_services() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SERVED_ENV and k != WORKSPACE_ENV}


def _foundation(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FOUNDATION, "--workspace", str(root), *args], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def served(workspace: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    process = subprocess.Popen(
        [*FOUNDATION, "--workspace", str(workspace), "demo", "serve", "--json"],
        env=_env_without_services(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line, process.stderr.read() if process.stderr else "no output"
        envelope = json.loads(line)
        assert (envelope["ok"], envelope["command"]) == (True, "demo serve")
        yield process, envelope["data"]
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


def _refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)
    except urllib.error.HTTPError:
        return False  # it answered (401/404): still up
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def _ndjson_rows(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


@pytest.mark.slow
def test_serve_keeps_both_services_up_and_ingest_lands_their_rows(
    workspace: Path, served: tuple[subprocess.Popen[str], dict[str, str]]
) -> None:
    process, variables = served
    assert set(variables) == set(SERVED_ENV)
    landing = workspace / "landing" / "fleet_maintenance"
    env = {**_env_without_services(), **variables}
    sources = [f"fleet_maintenance/{name}" for name in ("trucks", *SERVED_SOURCES)]
    result = _foundation(workspace, "ingest", *sources, "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    reports = {r["source"]: r for r in json.loads(result.stdout)["data"]["reports"]}
    expected = {
        "maintenance": _ndjson_rows(landing / "maintenance" / "maintenance.ndjson"),
        "failures": len(json.loads((landing / "failures" / "failures.json").read_text())),
        "depots": len(DEPOTS),  # one row per depot on the served page (its totals footer is not data)
    }
    for name, rows in expected.items():
        report = reports[f"fleet_maintenance/{name}"]
        assert report["status"] == "landed" and report["rows_landed"] == rows > 0, report
    assert reports["fleet_maintenance/maintenance"]["notes"]["origin"].startswith(variables["WORKSHOP_API_URL"])

    assert process.poll() is None  # still serving after the ingest: it stays up until Ctrl-C
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert _refused(variables["DEPOT_PAGE_URL"]) and _refused(variables["WORKSHOP_API_URL"] + "maintenance")


def test_serve_runs_a_command_with_the_variables_set_then_stops(workspace: Path) -> None:
    probe = "import os, sys; print(' '.join(os.environ[n] for n in sys.argv[1:])); sys.exit(3)"
    result = _foundation(
        workspace, "demo", "serve", "--", sys.executable, "-c", probe, *SERVED_ENV, env=_env_without_services()
    )
    assert result.returncode == 3, result.stderr  # the command's own exit code
    api_url, token, page_url = result.stdout.split()
    assert api_url.startswith("http://127.0.0.1:") and api_url.endswith("/api/") and len(token) >= 24
    assert page_url.endswith("/depots.html")
    assert _refused(page_url)  # stopped with the command


def test_without_the_services_the_errors_name_the_command(workspace: Path) -> None:
    sources = [f"fleet_maintenance/{name}" for name in SERVED_SOURCES]
    unset = _foundation(workspace, "ingest", *sources, "--json", env=_env_without_services())
    assert unset.returncode == 1
    errors = {e["source"]: e["message"] for e in json.loads(unset.stdout)["errors"]}
    assert set(errors) == set(sources)
    for source, message in errors.items():
        assert "is not set" in message and "foundation demo serve" in message, (source, message)

    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        env = {
            **_env_without_services(),
            "WORKSHOP_API_URL": f"http://127.0.0.1:{port}/api/",
            "WORKSHOP_TOKEN": "stale",
            "DEPOT_PAGE_URL": f"http://127.0.0.1:{port}/depots.html",
        }
        refused = _foundation(workspace, "ingest", *sources, "--json", env=env)
    assert refused.returncode == 1
    errors = {e["source"]: e["message"] for e in json.loads(refused.stdout)["errors"]}
    assert set(errors) == set(sources)
    for source, message in errors.items():
        assert f"127.0.0.1:{port}" in message and "foundation demo serve" in message, (source, message)
        assert "stale" not in message  # the token is never shown


def test_serve_generates_missing_landing_files_and_refuses_a_busy_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    shutil.copy(REPO / "foundation.yaml", root / "foundation.yaml")
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    for name in SERVED_ENV:
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["--workspace", str(root), "demo", "serve", "--page-port", str(port)])
    assert result.exit_code == 1
    assert f"cannot serve the depot page on 127.0.0.1:{port}: the port is in use" in result.output
    assert "--page-port" in result.output
    assert missing_files(root / "landing" / "fleet_maintenance") == []  # generated before serving
    assert all(name not in os.environ for name in SERVED_ENV)  # the environment is restored


def test_export_lines_quote_values_for_the_shell() -> None:
    lines = export_lines({"WORKSHOP_API_URL": "http://127.0.0.1:1/api/", "WORKSHOP_TOKEN": "a b'c"})
    assert lines == ["export WORKSHOP_API_URL=http://127.0.0.1:1/api/", "export WORKSHOP_TOKEN='a b'\"'\"'c'"]


def _ignore_stop_signals() -> None:
    """What a background job or a test runner may hand down: Ctrl+C and SIGTERM ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_on_its_signal_even_when_started_with_stop_signals_ignored(
    workspace: Path, stop: signal.Signals
) -> None:
    process = subprocess.Popen(
        [*FOUNDATION, "--workspace", str(workspace), "demo", "serve", "--json"],
        env=_env_without_services(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=_ignore_stop_signals,
    )
    try:
        assert process.stdout is not None and json.loads(process.stdout.readline())
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
