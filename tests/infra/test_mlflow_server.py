"""MLflow in production: a tracking server on PostgreSQL with proxied artifacts, used by our training, registry and API
through settings alone (`FOUNDATION_MLFLOW__TRACKING_URI=http://...`).

Real components: PostgreSQL (tests/pg_server.py), `mlflow server` over a loopback socket, the real training pipeline,
the API app with its lifespan. Not real: the object store: a local folder given to `--artifacts-destination` stands
in for s3:// / gs:// / abfss:// (the server proxies artifacts the same way; only the URI scheme differs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pg_server import PostgresServer, free_port

from mlops.registry import current_champion, mlflow_client, promote, read_history
from tests.infra.conftest import MLFLOW_SERVER_SCRIPT, MlflowServer, running_server, wait_until_healthy
from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features

MODEL = "fleet__risk"
API_KEY = "infra-test-key-0123456789"
INSTANCES = [
    {"truck_type": "van", "temp": 99.5, "vibration": 3.6, "hours": 4.0},
    {"truck_type": "rigid", "temp": 85.0, "vibration": 2.7, "hours": 0.0},
]


@pytest.mark.slow
def test_training_registry_and_api_work_against_the_tracking_server(
    mlflow_server: MlflowServer, postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.pipeline import run_training
    from serving.app import create_app

    monkeypatch.setenv("FOUNDATION_MLFLOW__TRACKING_URI", mlflow_server.url)  # the only change from embedded
    kit = MlWorkspace(tmp_path / "ws")
    kit.publish(synthetic_features(trucks=6, days=40))
    candidate = {"name": "logistic_regression", "estimator": "logistic_regression", "params": {"max_iter": 500}}
    kit.write_spec(spec_dict(candidates=[candidate], baseline={"rule": "temp > 200"}))  # the gate registers it

    report = run_training(kit.workspace, kit.ref())
    version = report["registered_version"]
    assert version == 1
    promote(kit.workspace, MODEL, version, "first model on the production registry", who="tests")

    # The registry lives in PostgreSQL: run, model version and alias are rows there, not in a local sqlite file.
    sql = f"SELECT v.version, a.alias FROM model_versions v JOIN registered_model_aliases a ON a.name = v.name AND a.version = v.version WHERE v.name = '{MODEL}'"  # noqa: E501
    assert postgres_server.psql(sql, database=mlflow_server.database).split() == ["1|champion"]
    runs = postgres_server.psql("SELECT count(*) FROM runs WHERE status = 'FINISHED'", database=mlflow_server.database)
    assert int(runs) >= 1
    assert not list(kit.root.rglob("mlflow.db")), "the workspace must not fall back to a local sqlite store"
    # Artifacts went through the server into its destination (the stand-in object store), none into the workspace.
    assert list(mlflow_server.artifacts.rglob("MLmodel")), "no model artifact reached --artifacts-destination"
    assert not (kit.root / ".foundation" / "mlartifacts").exists()
    # A second client (another process would do the same) sees the champion through the server.
    champion = current_champion(mlflow_client(kit.workspace), MODEL)
    assert champion is not None and int(champion.version) == version
    assert read_history(kit.workspace, MODEL)[-1]["action"] == "manual_promote"

    # Clients reach the server by a service name (compose: `mlflow:5000`), which only MLFLOW_SERVER_ALLOWED_HOSTS lets
    # past MLflow's DNS-rebinding guard: a name it does not list is refused.
    assert _status(f"{mlflow_server.url}/api/2.0/mlflow/experiments/search?max_results=1", "mlflow:5000") == 200
    assert _status(f"{mlflow_server.url}/api/2.0/mlflow/experiments/search?max_results=1", "evil.example:5000") == 403

    monkeypatch.setenv("FOUNDATION_API_KEYS", API_KEY)
    with TestClient(create_app(kit.root), raise_server_exceptions=False) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["models"] == {MODEL: version}
        response = client.post(
            f"/v1/models/{MODEL}/predict", headers={"X-API-Key": API_KEY}, json={"instances": INSTANCES}
        )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["version"] for p in predictions] == [version, version]
    assert predictions[0]["score"] > predictions[1]["score"]  # the hot truck: the trained model, loaded from the server


def _status(url: str, host: str) -> int:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_launcher_refuses_a_bare_postgresql_uri_without_echoing_it() -> None:
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": "postgresql://u:pw-not-shown@db/mlflow"}
    env["MLFLOW_ARTIFACTS_DESTINATION"] = "s3://bucket/mlflow-artifacts"
    result = subprocess.run(["sh", str(MLFLOW_SERVER_SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "write postgresql+psycopg2://" in result.stderr and "pw-not-shown" not in result.stderr


def test_launcher_names_the_missing_artifact_destination() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_BACKEND_STORE_URI"] = "postgresql+psycopg2://u:pw@db/mlflow"
    result = subprocess.run(["sh", str(MLFLOW_SERVER_SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "MLFLOW_ARTIFACTS_DESTINATION" in result.stderr


HEALTH_SERVER = """
import http.server, os, subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])  # as uvicorn/gunicorn fork workers
open(sys.argv[2], "w").write(f"{os.getpgid(0)} {worker.pid}")
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_server_and_its_workers_are_stopped_when_the_test_body_fails(tmp_path: Path) -> None:
    port, pids = free_port(), tmp_path / "pids"
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", HEALTH_SERVER, str(port), str(pids)]
    with (
        pytest.raises(RuntimeError, match="test body failed"),
        running_server(command, dict(os.environ), url, tmp_path / "log"),
    ):
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            assert response.status == 200
        group, worker = (int(n) for n in pids.read_text().split())
        assert group != os.getpgid(0)  # its own process group, so stopping it never touches pytest
        raise RuntimeError("test body failed")
    with pytest.raises(OSError):  # nothing listens there any more
        urllib.request.urlopen(f"{url}/health", timeout=2)
    # The worker went with the server: the whole group was stopped (a zombie not yet reaped by init is dead too).
    assert _dead_within(worker, seconds=10), f"worker {worker} of process group {group} survived the stop"


def _dead_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_waiting_for_health_fails_fast_with_the_log_when_the_server_dies(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; print('cannot reach the backend store'); sys.exit(3)"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    with pytest.raises(RuntimeError, match=r"exited with 3(.|\n)*cannot reach the backend store"):
        wait_until_healthy("http://127.0.0.1:9", process, log_file, timeout=60)
    assert process.returncode == 3


def test_waiting_for_health_times_out_naming_the_url(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    log_file.write_text("still migrating\n")
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(RuntimeError, match=r"did not answer http://127.0.0.1:9/health(.|\n)*still migrating"):
            wait_until_healthy("http://127.0.0.1:9", process, log_file, timeout=1)
    finally:
        process.kill()
        process.wait()
