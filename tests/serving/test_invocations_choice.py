"""Bare `/invocations` with several models served (issue 16 item 7): the `X-Model-Name` header names the model,
else `api.default_model`; neither is a 400 that says both. Through the fast routes and FastAPI's alike, and in the
OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.serving.conftest import KEYS, OTHER, RISK, RISK_KEY, auth


def app_client(root: Path, monkeypatch: pytest.MonkeyPatch, **settings: str) -> TestClient:
    from serving.app import create_app

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    for name, value in settings.items():
        monkeypatch.setenv(f"FOUNDATION_API__{name.upper()}", value)
    return TestClient(create_app(root), raise_server_exceptions=False)


@pytest.fixture(params=["true", "false"], ids=["fast-routes", "fastapi-routes"])
def two_models(
    request: pytest.FixtureRequest, served_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    with app_client(served_workspace, monkeypatch, fast_routes=request.param) as client:
        yield client


def invoke(client: TestClient, rows: list[dict[str, Any]], model: str | None = None, key: str | None = None) -> Any:
    headers = {**(auth(key) if key else auth()), **({"X-Model-Name": model} if model else {})}
    return client.post("/invocations", headers=headers, json={"dataframe_records": rows})


def test_the_header_chooses_the_model(two_models: TestClient, instances: list[dict[str, Any]]) -> None:
    for name in (RISK, OTHER):
        chosen = invoke(two_models, instances, model=name)
        named = two_models.post(f"/v1/models/{name}/invocations", headers=auth(), json={"dataframe_records": instances})
        assert chosen.status_code == 200 and chosen.json() == named.json()
    assert invoke(two_models, instances, model=RISK).json() != invoke(two_models, instances, model=OTHER).json()


def test_no_header_no_default_unknown_and_forbidden_models_are_clear_4xx(
    two_models: TestClient, instances: list[dict[str, Any]]
) -> None:
    cases = [
        (invoke(two_models, instances), 400, "X-Model-Name"),
        (invoke(two_models, instances, model="fleet__nope"), 404, "no served model named 'fleet__nope'"),
        (invoke(two_models, instances, model=OTHER, key=RISK_KEY), 403, "may not use the model 'fleet__other'"),
    ]
    for answer, status, detail in cases:
        assert answer.status_code == status, answer.text
        assert set(answer.json()) == {"detail", "errors", "request_id"} and detail in answer.json()["detail"]


def test_a_configured_default_answers_without_a_header(
    served_workspace: Path, monkeypatch: pytest.MonkeyPatch, instances: list[dict[str, Any]]
) -> None:
    with app_client(served_workspace, monkeypatch, default_model=OTHER) as client:
        named = client.post(f"/v1/models/{OTHER}/invocations", headers=auth(), json={"dataframe_records": instances})
        assert invoke(client, instances).json() == named.json()
        assert invoke(client, instances, model=RISK).json() != named.json()  # the header still wins
        body = client.get("/openapi.json").json()["paths"]["/invocations"]["post"]
        assert "FleetOtherRow" in str(body["requestBody"]["content"]["application/json"]["schema"])
        header = next(p for p in body["parameters"] if p["name"] == "X-Model-Name")
        assert header["in"] == "header" and not header["required"]


def test_without_a_default_the_document_requires_the_header(two_models: TestClient) -> None:
    body = two_models.get("/openapi.json").json()["paths"]["/invocations"]["post"]
    header = next(p for p in body["parameters"] if p["name"] == "X-Model-Name")
    assert header["required"] and RISK in header["description"] and OTHER in header["description"]
    assert "400" in body["responses"]
