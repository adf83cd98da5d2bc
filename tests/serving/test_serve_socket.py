"""`foundation serve` over a real socket: a subprocess on a free port, polled until ready, then called with a key."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import ALL_KEY, KEYS, RISK

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, body: dict[str, Any] | None = None, key: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_foundation_serve_answers_over_a_socket(served_workspace: Path, instances: list[dict]) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).parent / "foundation"),
        "--workspace",
        str(served_workspace),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "FOUNDATION_API_KEYS": KEYS}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"foundation serve exited: {process.stdout.read() if process.stdout else ''}"
            try:
                status, body = _call(f"{base}/health/ready")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "not ready within 90 s"
            time.sleep(0.2)
        assert body["models"][RISK] == 1
        status, body = _call(f"{base}/v1/models/{RISK}/predict", {"instances": instances}, key=ALL_KEY)
        assert status == 200, body
        assert [p["version"] for p in body["predictions"]] == [1, 1, 1]
        assert all(0 <= p["score"] <= 1 for p in body["predictions"])
        status, body = _call(f"{base}/v1/models/{RISK}/predict", {"instances": instances})
        assert status == 401
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert ALL_KEY not in output  # keys never reach the log
