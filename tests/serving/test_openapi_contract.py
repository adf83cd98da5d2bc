"""The OpenAPI document is a contract: each model's routes typed from its MLflow signature, with a real example that
answers 200; the key schemes declared; every error status documented with the one error body the API really sends.
(schemathesis with all its checks over every operation: tests/serving/test_fuzz.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.errors import ErrorBody
from tests.serving.conftest import ALL_KEY, OTHER, RISK, RISK_KEY, auth

# the synthetic feature table's columns and their MLflow types (tests/mlops/conftest.py)
SIGNATURE = {"truck_type": "string", "temp": "double", "vibration": "double", "hours": "double"}
JSON_TYPES = {"string": "string", "double": "number"}


def _document(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def _component(document: dict[str, Any], ref: str) -> dict[str, Any]:
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


@pytest.mark.parametrize("name", [RISK, OTHER])
def test_each_model_has_its_own_routes_typed_from_its_signature(client: TestClient, name: str) -> None:
    document = _document(client)
    body = document["paths"][f"/v1/models/{name}/predict"]["post"]["requestBody"]["content"]["application/json"]
    request = _component(document, body["schema"]["$ref"])
    assert request["additionalProperties"] is False and request["required"] == ["instances"]
    row = _component(document, request["properties"]["instances"]["items"]["$ref"])
    assert row["additionalProperties"] is False
    assert set(row["properties"]) == set(SIGNATURE)
    signature = client.get(f"/v1/models/{name}", headers=auth()).json()["input_schema"]
    assert set(row["required"]) == {c["name"] for c in signature if c["required"]}
    for column, kind in SIGNATURE.items():
        declared = row["properties"][column]
        types = {declared.get("type")} | {alt.get("type") for alt in declared.get("anyOf", [])}
        assert JSON_TYPES[kind] in types, (column, declared)
    assert "/v1/models/{name}/predict" not in document["paths"]


@pytest.mark.parametrize("name", [RISK, OTHER])
def test_the_documented_examples_are_real_rows_that_answer_200(client: TestClient, name: str) -> None:
    paths = _document(client)["paths"]
    predict = paths[f"/v1/models/{name}/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    invoke = paths[f"/v1/models/{name}/invocations"]["post"]["requestBody"]["content"]["application/json"]["example"]
    row = predict["instances"][0]
    assert set(row) <= set(SIGNATURE) and row["truck_type"] in ("van", "rigid", "tractor")  # from the data
    answered = client.post(f"/v1/models/{name}/predict", headers=auth(), json=predict)
    assert answered.status_code == 200, answered.text
    assert client.post(f"/v1/models/{name}/invocations", headers=auth(), json=invoke).status_code == 200


def test_the_key_schemes_are_declared_on_every_keyed_operation(client: TestClient) -> None:
    document = _document(client)
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["BearerKey"]["type"] == "http" and schemes["BearerKey"]["scheme"] == "bearer"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/health/"):
                assert "security" not in operation and "401" not in operation["responses"], path
            else:
                assert operation["security"] == [{"ApiKeyHeader": []}, {"BearerKey": []}], (method, path)


def test_every_error_status_is_documented_with_the_one_error_body(client: TestClient) -> None:
    document = _document(client)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    expected = {
        ("get", "/v1/models"): {"401", "500"},
        ("get", f"/v1/models/{RISK}"): {"401", "403", "404", "500", "503"},
        ("post", f"/v1/models/{RISK}/predict"): {"401", "403", "404", "413", "422", "500", "503"},
        ("post", f"/v1/models/{RISK}/invocations"): {"401", "403", "404", "413", "422", "500", "503"},
        ("get", "/v1/kpis"): {"401", "422", "500"},
        ("get", "/v1/kpis/{kpi_id}"): {"401", "404", "422", "500"},
        ("get", "/metrics"): {"401", "500"},
    }
    for (method, path), statuses in expected.items():
        responses = document["paths"][path][method]["responses"]
        errors = {status for status in responses if status[0] in "45"}
        assert errors == statuses, (method, path, errors)
        for status in errors:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {"text/plain"}  # what /metrics sends, not JSON


def _errors(client: TestClient) -> dict[str, Any]:
    rows = [{"truck_type": "van", "temp": 99.5, "vibration": 3.6, "hours": 4.0}]
    return {
        "401 no key": client.get("/v1/models"),
        "401 wrong key": client.post(f"/v1/models/{RISK}/predict", headers=auth("nope"), json={"instances": rows}),
        "403": client.get(f"/v1/models/{OTHER}", headers=auth(RISK_KEY)),
        "404 model": client.post("/v1/models/fleet__nope/predict", headers=auth(), json={"instances": rows}),
        "404 path": client.get("/v1/nothing", headers=auth()),
        "404 kpi": client.get("/v1/kpis/no_such_kpi", headers=auth()),
        "405": client.put("/v1/models", headers=auth()),
        "400 several models": client.post("/invocations", headers=auth(), json={"instances": rows}),
        "413": client.post(
            f"/v1/models/{RISK}/predict", headers={**auth(), "Content-Type": "application/json"}, content=b" " * 2**23
        ),
        "422 field": client.post(f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": [{"temp": "x"}]}),
        "422 json": client.post(
            f"/v1/models/{RISK}/predict", headers={**auth(), "Content-Type": "application/json"}, content=b"{"
        ),
        "422 too big": client.post(
            f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": [{**rows[0], "temp": 1e16}]}
        ),
        "422 query": client.get("/v1/kpis?q=a&q=b", headers=auth()),
    }


def test_every_error_the_api_answers_has_the_one_body(client: TestClient) -> None:
    for case, response in _errors(client).items():
        assert response.status_code == int(case[:3]), (case, response.status_code, response.text)
        body = response.json()
        assert set(body) == {"detail", "errors", "request_id"}, (case, body)
        ErrorBody.model_validate(body)
        assert body["request_id"] == response.headers["x-request-id"], case
        assert bool(body["errors"]) == case.startswith("422"), (case, body)


def test_a_repeated_query_parameter_is_refused_not_silently_dropped(client: TestClient) -> None:
    response = client.get("/v1/kpis?q=a&q=b", headers=auth(ALL_KEY))
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "query.q", "message": "given more than once: send one value", "type": "repeated"}
    ]
    assert client.get("/v1/kpis?q=a", headers=auth(ALL_KEY)).status_code == 200
