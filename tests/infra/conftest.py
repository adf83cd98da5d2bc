"""Production counterparts started by the test run: an MLflow tracking server on the session's PostgreSQL
(`postgres_server` in tests/conftest.py, from tests/pg_server.py).

`running_mlflow_server` starts `mlflow server` on a free loopback port, waits for `/health` (failing fast, with the
server's log, if the process dies or never answers) and stops the whole process group on exit, even when the test
failed. The backend-store URI carries the database password, so it goes through the environment
(`MLFLOW_BACKEND_STORE_URI`), never on a command line that `ps` shows.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_server import PostgresServer, free_port

MLFLOW_SERVER_SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "mlflow" / "mlflow-server.sh"
ALLOWED_HOSTS = "mlflow,mlflow:*,127.0.0.1,127.0.0.1:*,localhost,localhost:*"  # `mlflow:5000`: a compose service name
STARTUP_TIMEOUT_S = 240.0  # a cold start (imports + migrations of an empty database) on a busy 2-core CI box


@dataclass
class MlflowServer:
    url: str
    artifacts: Path  # the folder standing in for the object store (`--artifacts-destination`)
    database: str
    log_file: Path


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_file: Path, timeout: float) -> None:
    """Poll `<url>/health` until it answers 200; raise with the server log if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {process.returncode} before answering:\n{_log_tail(log_file)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"mlflow server did not answer {url}/health within {timeout:.0f}s:\n{_log_tail(log_file)}")


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (uvicorn and its workers), SIGKILL it if it hangs."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def running_server(command: list[str], env: dict[str, str], url: str, log_file: Path) -> Iterator[str]:
    """Start `command` in its own process group, wait for `<url>/health`, yield `url`; always stop the group."""
    with log_file.open("wb") as log:
        # A new session: the server and its workers form one process group that we stop as a whole.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_until_healthy(url, process, log_file, STARTUP_TIMEOUT_S)
        yield url
    finally:
        stop_process_group(process)


@contextlib.contextmanager
def running_mlflow_server(postgres: PostgresServer, database: str, folder: Path) -> Iterator[MlflowServer]:
    """`mlflow server` on `database` (created here) with artifacts proxied to `folder/artifacts`."""
    postgres.create_database(database)
    # SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3; psycopg2 is the driver installed.
    backend = postgres.url_for(database).replace("postgresql://", "postgresql+psycopg2://", 1)
    artifacts = folder / "artifacts"  # a local folder stands in for the object store (s3://, gs://, abfss://)
    artifacts.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = ["sh", str(MLFLOW_SERVER_SCRIPT)]  # the shipped launcher (infra/mlflow/)
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": backend,
        "MLFLOW_ARTIFACTS_DESTINATION": artifacts.as_uri(),
        "MLFLOW_SERVER_ALLOWED_HOSTS": ALLOWED_HOSTS,
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
        "MLFLOW_BIN": str(Path(sys.executable).parent / "mlflow"),
    }
    log_file = folder / "mlflow-server.log"
    with running_server(command, env, f"http://127.0.0.1:{port}", log_file) as url:
        yield MlflowServer(url=url, artifacts=artifacts, database=database, log_file=log_file)


@pytest.fixture
def mlflow_server(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[MlflowServer]:
    database = f"mlflow_{secrets.token_hex(4)}"  # one per test: the PostgreSQL server is shared by the session
    with running_mlflow_server(postgres_server, database, tmp_path / "mlflow-server") as server:
        yield server


@contextlib.contextmanager
def running_mlflow_server_on_s3(
    postgres: PostgresServer, database: str, s3_environ: dict[str, str], destination: str, folder: Path
) -> Iterator[str]:
    """`mlflow server` on `database` (which must exist) with artifacts proxied to `destination` on the S3 server whose
    variables are `s3_environ`: only the server process holds the S3 credentials. Yields its URL."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))},
        **s3_environ,
        "MLFLOW_S3_ENDPOINT_URL": s3_environ["AWS_ENDPOINT_URL"],
        "MLFLOW_BACKEND_STORE_URI": postgres.url_for(database).replace("postgresql://", "postgresql+psycopg2://", 1),
        "MLFLOW_ARTIFACTS_DESTINATION": destination,
        "MLFLOW_SERVER_ALLOWED_HOSTS": ALLOWED_HOSTS,
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
        "MLFLOW_BIN": str(Path(sys.executable).parent / "mlflow"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    with running_server(
        ["sh", str(MLFLOW_SERVER_SCRIPT)], env, f"http://127.0.0.1:{port}", folder / "server.log"
    ) as url:
        yield url
