"""Over a real socket (`foundation serve` subprocess): hot reload under load, registry faults, the feedback log
after shutdown, JSON request logs, and bad input of every kind."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from foundation.core.workspace import Workspace
from mlops.registry import promote
from serving.prediction_log import feedback_uri
from tests.serving.conftest import ALL_KEY, OTHER, RISK, RISK_KEY, add_version
from tests.serving.server import Server, call

pytestmark = pytest.mark.slow

FAST_RELOAD = {
    "FOUNDATION_API__RELOAD_INTERVAL_S": "0.3",
    # a fresh sqlite connection per registry query, so a broken store file is seen at once (as a remote one would be)
    "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool",
}


class Load:
    """`clients` threads calling predict in a loop; every answer's status and version kept in order."""

    def __init__(self, base: str, rows: list[dict[str, Any]], clients: int = 6) -> None:
        self.url = f"{base}/v1/models/{RISK}/predict"
        self.rows = rows
        self.results: list[tuple[float, int, int | None]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(clients)]

    def _loop(self, i: int) -> None:
        while not self._stop.is_set():
            try:
                status, body = call(self.url, {"instances": [self.rows[i % len(self.rows)]]}, key=ALL_KEY)
            except Exception:  # a refused or reset connection is a failed request too
                status, body = 0, {}
            version = body.get("version") if isinstance(body, dict) else None
            with self._lock:
                self.results.append((time.monotonic(), status, version))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def versions_since(self, t: float) -> list[int | None]:
        with self._lock:
            return [v for at, _, v in self.results if at >= t]


def test_alias_switch_under_load_fails_no_request_and_switches_within_seconds(
    own_workspace: Path, instances: list[dict]
) -> None:
    v2 = add_version(own_workspace, RISK)
    with Server(own_workspace, FAST_RELOAD) as server:
        server.wait_ready()
        with Load(server.base, instances) as load:
            time.sleep(1.0)
            promoted_at = time.monotonic()
            promote(Workspace.open(own_workspace), RISK, v2, "hot reload test", who="tests")
            deadline = promoted_at + 15
            while time.monotonic() < deadline and v2 not in load.versions_since(promoted_at):
                time.sleep(0.05)
            switched = next(at for at, _, v in load.results if v == v2) - promoted_at
            time.sleep(1.0)  # keep the load on after the switch
        statuses = [s for _, s, _ in load.results]
        assert len(statuses) > 50
        assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}
        assert switched < 5, f"switched after {switched:.1f} s"
        tail = [v for _, _, v in load.results[-20:]]
        assert tail == [v2] * 20
        status, ready = call(f"{server.base}/health/ready")
        assert status == 200 and ready["models"][RISK] == v2
        status, detail = call(f"{server.base}/v1/models/{RISK}", key=ALL_KEY)
        assert detail["version"] == v2 and detail["promotion_reason"] == "hot reload test"
        metrics = call(f"{server.base}/metrics", key=ALL_KEY)[1]
        assert f'foundation_api_model_version{{model="{RISK}"}} {v2}.0' in metrics
        assert f'foundation_api_reloads_total{{model="{RISK}",outcome="success"}} 1.0' in metrics
    lines = [line for line in server.log_lines() if line.get("logger") == "serving.reload"]
    assert any(f"now serves version {v2}" in line["message"] for line in lines), lines


def test_registry_faults_during_reload_keep_the_old_version_serving(own_workspace: Path, instances: list[dict]) -> None:
    store = own_workspace / ".foundation" / "mlflow.db"
    broken = add_version(own_workspace, RISK, source=str(own_workspace / "no_such_model"))
    with Server(own_workspace, FAST_RELOAD) as server:
        server.wait_ready()
        url = f"{server.base}/v1/models/{RISK}/predict"
        # 1. a champion that cannot be loaded: the old version keeps serving, ready stays 200, the reason is shown
        promote(Workspace.open(own_workspace), RISK, broken, "a version whose files are gone", who="tests")
        ready = _wait_for(server, lambda body: RISK in body.get("reload_errors", {}))
        assert ready["status"] == "ready" and ready["models"][RISK] == 1
        assert f"cannot load version {broken}" in ready["reload_errors"][RISK]
        status, body = call(url, {"instances": instances}, key=ALL_KEY)
        assert status == 200 and body["version"] == 1
        # 2. the registry unreachable: still serving version 1; `registry` in the detail; the metric says it
        store.rename(store.with_suffix(".away"))
        store.mkdir()  # sqlite cannot open a folder: every registry query fails
        try:
            ready = _wait_for(server, lambda body: "registry" in body.get("reload_errors", {}))
            assert ready["status"] == "ready" and ready["models"][RISK] == 1
            status, body = call(url, {"instances": instances}, key=ALL_KEY)
            assert status == 200 and body["version"] == 1
            metrics = call(f"{server.base}/metrics", key=ALL_KEY)[1]
            assert "foundation_api_registry_up 0.0" in metrics
            assert f'foundation_api_reloads_total{{model="{RISK}",outcome="failure"}}' in metrics
        finally:
            store.rmdir()
            store.with_suffix(".away").rename(store)
        ready = _wait_for(server, lambda body: "registry" not in body.get("reload_errors", {}))
        assert ready["models"][RISK] == 1
    assert all(line.startswith("{") for line in server.log().splitlines()[1:]), "every log line is JSON"
    errors = [line["message"] for line in server.log_lines() if line.get("level") == "error"]
    assert any("cannot read the model registry" in m and "still serving" in m for m in errors), errors
    assert any(f"cannot load version {broken}" in m for m in errors), errors


def test_registry_unreachable_at_start_up_is_not_ready_then_recovers(own_workspace: Path) -> None:
    store = own_workspace / ".foundation" / "mlflow.db"
    blocked = own_workspace / "registry"
    blocked.write_text("a file where the registry's folder should be")
    env = {**FAST_RELOAD, "FOUNDATION_MLFLOW__TRACKING_URI": f"sqlite:///{blocked}/mlflow.db"}
    with Server(own_workspace, env) as server:
        server.wait_live()
        status, body = call(f"{server.base}/health/ready")
        assert status == 503 and body["status"] == "not ready" and "registry" in body["errors"]
        assert call(f"{server.base}/v1/models/{RISK}/predict", {"instances": [{}]}, key=ALL_KEY)[0] == 503
        assert call(f"{server.base}/health/live")[0] == 200
        blocked.unlink()
        blocked.mkdir()
        shutil.copy(store, blocked / "mlflow.db")  # the registry is back
        server.wait_ready(timeout=60)  # retried by the watcher: no restart needed
        assert call(f"{server.base}/health/ready")[1]["models"] == {OTHER: 1, RISK: 1}
    log = server.log()
    assert "cannot read the model registry" in log
    assert ALL_KEY not in log and RISK_KEY not in log


def _wait_for(server: Server, predicate: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = call(f"{server.base}/health/ready")
        if isinstance(body, dict) and predicate(body):
            return body
        assert time.monotonic() < deadline, f"never happened; last /health/ready: {status} {body}"
        time.sleep(0.1)


def test_feedback_log_and_json_request_logs_after_shutdown(own_workspace: Path, instances: list[dict]) -> None:
    env = {"FOUNDATION_API__PREDICTION_LOG_FLUSH_S": "600"}  # only the shutdown flush writes: it must not lose any
    answered: list[dict[str, Any]] = []
    with Server(own_workspace, env) as server:
        server.wait_ready()
        for i in range(5):
            body = {"instances": instances[: i % 3 + 1]}
            status, body = call(f"{server.base}/v1/models/{RISK}/predict", body, ALL_KEY)
            assert status == 200
            answered.extend(body["predictions"])
        status, body = call(
            f"{server.base}/v1/models/{OTHER}/invocations", {"dataframe_records": instances}, key=RISK_KEY
        )
        assert status == 403
    uri = feedback_uri(Workspace.open(own_workspace), RISK)
    assert uri.endswith("/ml/fleet/risk/api_predictions")
    table = DeltaTable(uri).to_pyarrow_table().to_pylist()
    by_id = {row["prediction_id"]: row for row in table}
    assert sorted(by_id) == sorted(p["prediction_id"] for p in answered)
    for prediction in answered:
        row = by_id[prediction["prediction_id"]]
        assert row["model"] == RISK and row["model_version"] == 1
        assert row["score"] == pytest.approx(prediction["score"], abs=1e-12)
        assert json.loads(row["prediction"]) == prediction["prediction"]
        assert set(json.loads(row["inputs"])) == {"truck_type", "temp", "vibration", "hours"}
        assert row["key_id"].startswith("key-") and row["request_id"]
    requests = [line for line in server.log_lines() if line.get("message") == "request"]
    predicts = [line for line in requests if line["route"] == "/v1/models/{name}/predict"]
    assert len(predicts) == 5
    assert {(p["status"], p["model"], p["version"]) for p in predicts} == {(200, RISK, 1)}
    assert all(p["latency_ms"] > 0 and p["request_id"] and p["key_id"].startswith("key-") for p in predicts)
    assert any(line["status"] == 403 for line in requests)
    text = server.log()
    assert ALL_KEY not in text and RISK_KEY not in text and '"instances"' not in text


@pytest.fixture(scope="module")
def shared_server(served_workspace: Path) -> Any:
    with Server(served_workspace, {"FOUNDATION_API__MAX_BODY_BYTES": "262144"}) as server:
        server.wait_ready()
        yield server


@pytest.mark.parametrize(
    ("case", "body", "key", "status", "says"),
    [
        ("no key", {"instances": "x"}, None, 401, "missing API key"),
        ("wrong key", {"instances": "x"}, "nope-nope", 401, "invalid API key"),
        ("key for another model", None, "other", 403, "may not use"),
        ("wrong type", [{"temp": "hot"}], ALL_KEY, 422, "instances[0].temp"),
        ("missing field", [{"drop": "truck_type"}], ALL_KEY, 422, "instances[0].truck_type"),
        ("extra field", [{"colour": "red"}], ALL_KEY, 422, "instances[0].colour"),
        ("empty batch", [], ALL_KEY, 422, "instances"),
        ("huge batch", [{}] * 1001, ALL_KEY, 422, "at most 1000"),
    ],
)
def test_bad_input_over_a_socket(
    shared_server: Server, instances: list[dict], case: str, body: Any, key: str | None, status: int, says: str
) -> None:
    url = f"{shared_server.base}/v1/models/{RISK}/predict"
    if key == "other":
        url, key, body = f"{shared_server.base}/v1/models/{OTHER}/predict", RISK_KEY, {"instances": instances}
    elif isinstance(body, list):
        rows = []
        for change in body:
            row = dict(instances[0])
            row.pop(change.get("drop", ""), None)
            row.update({k: v for k, v in change.items() if k != "drop"})
            rows.append(row)
        body = {"instances": rows}
    got, answer = call(url, body, key=key)
    assert got == status, (case, answer)
    assert says in json.dumps(answer), (case, answer)
    assert "Traceback" not in json.dumps(answer)


def test_body_limit_unknown_model_and_broken_json_over_a_socket(shared_server: Server, instances: list[dict]) -> None:
    base = shared_server.base
    # ~3 MB against a 256 KiB limit, several times: the client is still sending when the server refuses, and must
    # get the 413 rather than a broken pipe
    for _ in range(5):
        status, body = call(f"{base}/v1/models/{RISK}/predict", {"instances": instances * 30_000}, key=ALL_KEY)
        assert status == 413 and "262,144 bytes" in body["detail"]
    # the same body streamed in chunks, with no Content-Length to refuse it on
    connection = http.client.HTTPConnection("127.0.0.1", shared_server.port, timeout=15)
    chunks = (json.dumps(instances).encode() for _ in range(30_000))
    headers = {"X-API-Key": ALL_KEY, "Content-Type": "application/json"}
    connection.request("POST", f"/v1/models/{RISK}/predict", body=chunks, headers=headers, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and "262,144 bytes" in json.loads(response.read())["detail"]
    connection.close()
    # streamed with no key, no model a key may use or no such model, the connection closed after the answer: the
    # body is read before any answer (as FastAPI does), so the client gets the 413, not a connection reset
    refused = [{}, {"X-API-Key": RISK_KEY}, {"X-API-Key": ALL_KEY}]
    for key, url in zip(refused, [RISK, OTHER, "fleet__nope"], strict=True):
        connection = http.client.HTTPConnection("127.0.0.1", shared_server.port, timeout=15)
        chunks = (json.dumps(instances).encode() for _ in range(30_000))
        headers = {**key, "Content-Type": "application/json", "Connection": "close"}
        connection.request("POST", f"/v1/models/{url}/predict", body=chunks, headers=headers, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413, (key, url, response.read())
        connection.close()
    status, body = call(f"{base}/v1/models/fleet__nope/predict", {"instances": instances}, key=ALL_KEY)
    assert status == 404 and RISK in body["detail"]
    status, body = call(f"{base}/v1/models/{RISK}/predict", key=ALL_KEY, raw=b'{"instances": [')
    assert status == 422 and body["request_id"]
    # the server is still fine after all that
    assert call(f"{base}/v1/models/{RISK}/predict", {"instances": instances}, key=ALL_KEY)[0] == 200


def test_concurrent_callers_each_get_their_own_answer_over_a_socket(shared_server: Server) -> None:
    rows = [
        {"truck_type": "van", "temp": 80.0 + i, "vibration": 2.0 + i / 20, "hours": float(i % 7)} for i in range(40)
    ]
    url = f"{shared_server.base}/v1/models/{RISK}/predict"
    alone = [call(url, {"instances": [row]}, key=ALL_KEY)[1]["predictions"][0]["score"] for row in rows]
    together: list[float | None] = [None] * len(rows)

    def one(i: int) -> None:
        together[i] = call(url, {"instances": [rows[i]]}, key=ALL_KEY)[1]["predictions"][0]["score"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(rows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == pytest.approx(alone, abs=1e-12)


def test_workers_share_aggregated_metrics(served_workspace: Path, instances: list[dict]) -> None:
    with Server(served_workspace, {"FOUNDATION_API__PREDICTION_LOG": "false"}, workers=2) as server:
        server.wait_ready()
        for _ in range(6):
            assert call(f"{server.base}/v1/models/{RISK}/predict", {"instances": instances}, key=ALL_KEY)[0] == 200
        metrics = call(f"{server.base}/metrics", key=ALL_KEY)[1]
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("foundation_api_predictions_total{") and f'model="{RISK}"' in line
    )
    assert total == 18  # every worker's predictions, whichever worker answered /metrics
