"""`foundation serve` as a subprocess on a free loopback port: start, wait, call, stop (for the socket tests)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.serving.conftest import KEYS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(
    url: str, body: Any = None, key: str | None = None, raw: bytes | None = None, timeout: float = 15
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-API-Key"] = key
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read(), exc.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")


class Server:
    """A running `foundation serve`; its stderr (JSON log lines) goes to a file read by `log()`."""

    def __init__(self, workspace: Path, env: dict[str, str] | None = None, workers: int = 1) -> None:
        self._final: str | None = None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile("w+", prefix="serve-", suffix=".log", delete=False)  # noqa: SIM115
        command = [
            str(Path(sys.executable).parent / "foundation"),
            "--workspace",
            str(workspace),
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        full_env = {**os.environ, "FOUNDATION_API_KEYS": KEYS, **(env or {})}
        self.process = subprocess.Popen(command, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_live(self, timeout: float = 300) -> None:
        self._wait(lambda status: status in (200, 503), timeout)

    def wait_ready(self, timeout: float = 300) -> None:
        self._wait(lambda status: status == 200, timeout)

    def _wait(self, ok: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"foundation serve exited:\n{self.log()}"
            try:
                status, _ = call(f"{self.base}/health/ready", timeout=5)
                if ok(status):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, f"not up within {timeout} s:\n{self.log()}"
            time.sleep(0.2)

    def log(self) -> str:
        if self._final is not None:
            return self._final
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def stop(self) -> str:
        """SIGTERM (a graceful uvicorn shutdown: the lifespan flushes the feedback log); the log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._final is None:
            self._log.close()
            self._final = Path(self._log.name).read_text(encoding="utf-8", errors="replace")
            Path(self._log.name).unlink(missing_ok=True)
        return self._final

    def kill(self) -> None:
        """SIGKILL to the server and its worker processes at once (kill -9: no shutdown runs)."""
        import psutil

        try:
            processes = [psutil.Process(self.process.pid)]
            processes += processes[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.process.wait()
        psutil.wait_procs(processes, timeout=30)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
