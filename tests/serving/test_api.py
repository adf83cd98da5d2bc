"""The inference API in process (TestClient as a context manager, so the lifespan loads the champions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from foundation.core.settings_profiles import load_settings
from serving.app import create_app
from tests.serving.conftest import ALL_KEY, KEYS, OTHER, RISK, RISK_KEY, auth

# -- health, listing, detail ---------------------------------------------------------------------------------


def test_health_routes_are_open_and_ready_lists_the_champions(client: TestClient) -> None:
    assert client.get("/health/live").json()["status"] == "live"
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "models": {OTHER: 1, RISK: 1}, "errors": {}, "reload_errors": {}}


def test_list_models_shows_only_what_the_key_may_use(client: TestClient) -> None:
    everything = client.get("/v1/models", headers=auth()).json()
    listed = [(m["name"], m["version"], m["alias"]) for m in everything]
    assert listed == [(OTHER, 1, "champion"), (RISK, 1, "champion")]
    limited = client.get("/v1/models", headers=auth(RISK_KEY)).json()
    assert [m["name"] for m in limited] == [RISK]


def test_model_detail_has_version_metrics_schema_and_promotion(client: TestClient) -> None:
    detail = client.get(f"/v1/models/{RISK}", headers=auth()).json()
    assert detail["version"] == 1 and detail["alias"] == "champion" and detail["flavor"] == "sklearn"
    assert detail["metric"] == "f1" and 0 <= detail["metrics"]["precision"] <= 1
    assert 0 < detail["threshold"] < 1
    assert {c["name"]: c["type"] for c in detail["input_schema"]} == {
        "truck_type": "string",
        "temp": "double",
        "vibration": "double",
        "hours": "double",
    }
    assert detail["input_json_schema"]["additionalProperties"] is False
    assert detail["promoted_at"] is not None and detail["promotion_reason"]


def test_unknown_model_is_404_naming_the_served_ones(client: TestClient) -> None:
    response = client.get("/v1/models/fleet__nope", headers=auth())
    assert response.status_code == 404
    assert RISK in response.json()["detail"]
    assert client.post("/v1/models/fleet__nope/predict", headers=auth(), json={"instances": [{}]}).status_code == 404


# -- predict -------------------------------------------------------------------------------------------------


def test_predict_gives_one_prediction_per_instance_with_ids(client: TestClient, instances: list[dict]) -> None:
    response = client.post(f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": instances})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == RISK and body["version"] == 1
    predictions = body["predictions"]
    assert len(predictions) == 3
    assert len({p["prediction_id"] for p in predictions}) == 3
    threshold = client.get(f"/v1/models/{RISK}", headers=auth()).json()["threshold"]
    for p in predictions:
        assert p["model"] == RISK and p["version"] == 1
        assert 0 <= p["score"] <= 1
        assert p["prediction"] is (p["score"] >= threshold)
    # the hot truck scores higher than the cool one: the served model is the trained one, not a stub
    assert predictions[0]["score"] > predictions[1]["score"]
    assert response.headers["x-request-id"]


def test_bearer_token_works_like_x_api_key(client: TestClient, instances: list[dict]) -> None:
    headers = {"Authorization": f"Bearer {ALL_KEY}"}
    assert client.post(f"/v1/models/{OTHER}/predict", headers=headers, json={"instances": instances}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/models"),
        ("get", f"/v1/models/{RISK}"),
        ("post", f"/v1/models/{RISK}/predict"),
        ("post", "/invocations"),
        ("post", f"/v1/models/{RISK}/invocations"),
        ("get", "/metrics"),
        ("get", "/v1/kpis"),
    ],
)
def test_every_route_but_health_needs_a_valid_key(client: TestClient, method: str, path: str) -> None:
    body = {"json": {"instances": [{}]}} if method == "post" else {}
    missing = getattr(client, method)(path, **body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = getattr(client, method)(path, headers={"X-API-Key": ALL_KEY + "x"}, **body)
    assert wrong.status_code == 401
    assert ALL_KEY not in wrong.text


def test_a_key_limited_to_one_model_gets_403_on_another(client: TestClient, instances: list[dict]) -> None:
    body = {"instances": instances}
    assert client.post(f"/v1/models/{RISK}/predict", headers=auth(RISK_KEY), json=body).status_code == 200
    for path in (f"/v1/models/{OTHER}/predict", f"/v1/models/{OTHER}/invocations"):
        assert client.post(path, headers=auth(RISK_KEY), json=body).status_code == 403
    assert client.get(f"/v1/models/{OTHER}", headers=auth(RISK_KEY)).status_code == 403
    # a limited key learns nothing about models it may not use: unknown names are 403 too
    assert client.get("/v1/models/fleet__nope", headers=auth(RISK_KEY)).status_code == 403


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        (lambda r: {**r, "temp": "hot"}, "instances[1].temp", "float_parsing"),
        (lambda r: {k: v for k, v in r.items() if k != "truck_type"}, "instances[1].truck_type", "missing"),
        (lambda r: {**r, "colour": "red"}, "instances[1].colour", "extra_forbidden"),
        (lambda r: {**r, "truck_type": None}, "instances[1].truck_type", "string_type"),
    ],
)
def test_422_names_the_field_and_the_problem(
    client: TestClient, instances: list[dict], change: Any, field: str, kind: str
) -> None:
    rows = [instances[0], change(instances[1])]
    response = client.post(f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": rows})
    assert response.status_code == 422
    body = response.json()
    assert [(e["field"], e["type"]) for e in body["errors"]] == [(field, kind)]
    assert field in body["detail"]


def test_422_on_the_shape_of_the_body(client: TestClient, instances: list[dict]) -> None:
    url = f"/v1/models/{RISK}/predict"
    cases = {
        "empty batch": ({"instances": []}, "instances", "too_short"),
        "no instances": ({"rows": instances}, "instances", "missing"),
        "not a list": ({"instances": {"temp": 1}}, "instances", "list_type"),
    }
    for name, (body, field, kind) in cases.items():
        response = client.post(url, headers=auth(), json=body)
        assert response.status_code == 422, name
        assert (field, kind) in [(e["field"], e["type"]) for e in response.json()["errors"]], name
    broken = client.post(url, headers={**auth(), "Content-Type": "application/json"}, content=b'{"instances": [')
    assert broken.status_code == 422
    assert "Traceback" not in broken.text


# -- MLflow-compatible invocations ------------------------------------------------------------------------------


def _invocation_bodies(rows: list[dict]) -> dict[str, dict]:
    columns = list(rows[0])
    return {
        "dataframe_split": {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}},
        "dataframe_records": {"dataframe_records": rows},
        "instances": {"instances": rows},
        "inputs (records)": {"inputs": rows},
        "inputs (columns)": {"inputs": {c: [r[c] for r in rows] for c in columns}},
    }


def test_invocations_formats_give_the_predict_scores(client: TestClient, instances: list[dict]) -> None:
    predicted = client.post(f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": instances}).json()
    scores = [p["score"] for p in predicted["predictions"]]
    for name, body in _invocation_bodies(instances).items():
        response = client.post(f"/v1/models/{RISK}/invocations", headers=auth(), json=body)
        assert response.status_code == 200, (name, response.text)
        rows = response.json()["predictions"]  # predict_proba rows, as `mlflow models serve` answers
        assert [len(r) for r in rows] == [2, 2, 2], name
        assert [r[1] for r in rows] == pytest.approx(scores, abs=1e-12), name
        assert [r[0] + r[1] for r in rows] == pytest.approx([1, 1, 1]), name


def test_invocations_errors_name_the_clients_own_key(client: TestClient, instances: list[dict]) -> None:
    url = f"/v1/models/{RISK}/invocations"
    bad = [instances[0], {**instances[1], "temp": "hot"}]
    response = client.post(url, headers=auth(), json={"dataframe_records": bad})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["dataframe_records[1].temp"]
    two = client.post(url, headers=auth(), json={"instances": instances, "inputs": instances})
    assert two.status_code == 422 and "exactly one" in two.json()["detail"]
    ragged = client.post(url, headers=auth(), json={"dataframe_split": {"columns": ["temp"], "data": [[1, 2]]}})
    assert ragged.status_code == 422 and ragged.json()["errors"][0]["field"] == "dataframe_split.data[0]"


def test_bare_invocations_needs_a_single_served_model(client: TestClient, instances: list[dict]) -> None:
    response = client.post("/invocations", headers=auth(), json={"instances": instances})
    assert response.status_code == 400
    assert "/v1/models/{name}/invocations" in response.json()["detail"]


def test_bare_invocations_serves_the_only_model(
    served_workspace: Path, monkeypatch: pytest.MonkeyPatch, instances: list[dict]
) -> None:
    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    with TestClient(create_app(served_workspace)) as one:
        one.app.state.models.pop(OTHER)
        response = one.post("/invocations", headers=auth(), json={"dataframe_records": instances})
        named = one.post(f"/v1/models/{RISK}/invocations", headers=auth(), json={"dataframe_records": instances})
        assert response.status_code == 200
        assert response.json() == named.json()


def test_start_up_objects_are_frozen_out_of_the_collector_and_released_at_shutdown(
    served_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full GC passes over the start-up objects stalled every request in flight (bench/serving.py): the lifespan
    freezes them once the champions are loaded, and unfreezes at shutdown so a process running many apps can collect."""
    import gc

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    gc.unfreeze()
    with TestClient(create_app(served_workspace)) as running:
        assert running.get("/health/ready").status_code == 200
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_the_gil_switch_interval_is_the_settings_while_serving_and_restored_after(
    served_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    monkeypatch.setenv("FOUNDATION_API__GIL_SWITCH_INTERVAL_MS", "0.25")
    before = sys.getswitchinterval()
    with TestClient(create_app(served_workspace)) as running:
        assert running.get("/health/ready").status_code == 200
        assert sys.getswitchinterval() == pytest.approx(0.00025)
    assert sys.getswitchinterval() == before


# -- metrics, KPIs, docs -----------------------------------------------------------------------------------------


def test_metrics_count_requests_and_predictions_per_model(client: TestClient, instances: list[dict]) -> None:
    client.post(f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": instances})
    client.post(f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": [{"temp": "x"}]})
    text = client.get("/metrics", headers=auth()).text
    ok = 'foundation_api_requests_total{method="POST",model="fleet__risk",route="/v1/models/{name}/predict",status='
    assert ok + '"200"} 1.0' in text
    assert 'route="/v1/models/{name}/predict",status="422"} 1.0' in text
    assert 'foundation_api_request_duration_seconds_count{method="POST",model="fleet__risk"' in text
    predicted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('foundation_api_predictions_total{model="fleet__risk"')
    )
    assert predicted == 3
    assert 'foundation_api_model_version{model="fleet__other"} 1.0' in text
    assert "foundation_api_ready 1.0" in text


def test_kpi_catalogue_is_mounted(client: TestClient) -> None:
    response = client.get("/v1/kpis", headers=auth())
    assert response.status_code == 200
    assert isinstance(response.json(), list)
    assert client.get("/v1/kpis/no_such_kpi", headers=auth()).status_code == 404


def test_openapi_documents_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/health/live",
        "/health/ready",
        "/v1/models",
        f"/v1/models/{RISK}",
        f"/v1/models/{RISK}/predict",
        f"/v1/models/{OTHER}/invocations",
        "/metrics",
        "/v1/kpis",
    ):
        assert path in paths, path
    # each served model has its own typed routes; bare /invocations names its model in a header (two are served)
    assert "/v1/models/{name}/predict" not in paths and "/invocations" in paths
    assert client.get("/docs").status_code == 200


# -- limits, errors, settings --------------------------------------------------------------------------------------


def _app(root: Path, **api: Any) -> Any:
    settings = load_settings(root)
    return create_app(root, settings.model_copy(update={"api": settings.api.model_copy(update=api)}))


def test_body_over_the_limit_is_413_and_batches_over_the_maximum_are_422(
    served_workspace: Path, monkeypatch: pytest.MonkeyPatch, instances: list[dict]
) -> None:
    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    with TestClient(_app(served_workspace, max_body_bytes=2048, max_batch_size=4)) as small:
        url = f"/v1/models/{RISK}/predict"
        assert small.post(url, headers=auth(), json={"instances": instances}).status_code == 200
        huge = small.post(url, headers=auth(), json={"instances": instances * 40})
        assert huge.status_code == 413
        assert "2,048 bytes" in huge.json()["detail"]
        too_many = small.post(url, headers=auth(), json={"instances": instances * 2})
        assert too_many.status_code == 422
        assert too_many.json()["errors"][0] == {
            "field": "instances",
            "message": "List should have at most 4 items after validation, not 6",
            "type": "too_long",
        }


def test_open_api_needs_no_key(served_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOUNDATION_API_KEYS", raising=False)
    with TestClient(_app(served_workspace, open=True)) as open_client:
        assert open_client.get("/v1/models").status_code == 200
    with TestClient(_app(served_workspace)) as closed:
        assert closed.get("/v1/models").status_code == 401


def test_cors_is_off_unless_configured(served_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    with TestClient(_app(served_workspace)) as off:
        response = off.options(f"/v1/models/{RISK}/predict", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    with TestClient(_app(served_workspace, cors_origins=["https://app.example.com"], max_body_bytes=2048)) as on:
        response = on.options(f"/v1/models/{RISK}/predict", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://app.example.com"
        # every answer a page may read carries the headers, the middleware's own refusals too
        origin = {"Origin": "https://app.example.com"}
        too_big = on.post(f"/v1/models/{RISK}/predict", headers={**auth(), **origin}, content=b"x" * 4096)
        no_key = on.post(f"/v1/models/{RISK}/predict", headers=origin, json={"instances": []})
        for refused, status in ((too_big, 413), (no_key, 401)):
            assert refused.status_code == status
            assert refused.headers["access-control-allow-origin"] == "https://app.example.com"
            assert "x-request-id" in refused.headers["access-control-expose-headers"].lower()


def test_a_failing_model_answers_500_without_a_stack_trace(client: TestClient, instances: list[dict]) -> None:
    class Broken:
        classes_ = (False, True)

        def predict_proba(self, frame: Any) -> Any:
            raise RuntimeError("secret internals at /srv/model.py line 3")

    client.app.state.models[RISK].model = Broken()
    response = client.post(f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": instances})
    assert response.status_code == 500
    assert response.json()["detail"].startswith("the model could not score this request")
    assert response.json()["request_id"]
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_registry_unreachable_at_start_up_is_live_but_not_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    (tmp_path / "not_a_folder").write_text("a file where the store's folder should be")
    (tmp_path / "foundation.yaml").write_text(
        f"mlflow: {{tracking_uri: 'sqlite:///{tmp_path}/not_a_folder/mlflow.db'}}\n", encoding="utf-8"
    )
    with TestClient(create_app(tmp_path)) as broken:
        assert broken.get("/health/live").status_code == 200
        ready = broken.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not ready" and "registry" in ready.json()["errors"]
        assert broken.post(f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": [{}]}).status_code == 503
    assert "cannot read the model registry" in caplog.text
    assert ALL_KEY not in caplog.text and RISK_KEY not in caplog.text
