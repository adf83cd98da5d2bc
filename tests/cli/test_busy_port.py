"""`foundation serve` and `foundation ui` on a port another process holds: refused at once, before any model or
Dagster code loads, with a message naming the port and the option (issue 18: it loaded every model, then exited on
`[Errno 98]` logged as a JSON line)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundation.core.workspace import WORKSPACE_ENV

PROBE = """
import json, sys
from foundation.cli.main import app
try:
    app()
except SystemExit as exit:
    code = exit.code
sys.stderr.write("\\nMODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})) + " " + str(code) + "\\n")
"""


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "ui"])
def test_a_busy_port_is_refused_before_anything_loads(command: str, taken: int, tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    env = {**os.environ, WORKSPACE_ENV: str(tmp_path)}
    args = [command, "--host", "127.0.0.1", "--port", str(taken)]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output, _, line = result.stderr.rpartition("\nMODULES ")
    modules, code = line.strip().rsplit(" ", 1)
    assert code == "2", output
    assert f"port {taken} on 127.0.0.1 is already in use" in output and "--port" in output
    loaded = set(json.loads(modules)) & {"uvicorn", "fastapi", "mlflow", "serving", "dagster", "sklearn"}
    assert not loaded, f"`foundation {command}` loaded {sorted(loaded)} before refusing the port"
