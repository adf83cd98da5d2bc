"""`explain: true` on `/predict`: each prediction carries its bias and top contributions, which add up to the served
model's own output (log-odds for the logistic regression, probability for the tree), on the real app over the
trained workspace; without it the answer is unchanged; the contract documents both."""

from __future__ import annotations

import math

from fastapi.testclient import TestClient

from tests.serving.conftest import OTHER, RISK, auth

FEATURES = {"truck_type", "temp", "vibration", "hours"}


def _post(client: TestClient, name: str, body: dict) -> dict:
    response = client.post(f"/v1/models/{name}/predict", headers=auth(), json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_linear_contributions_add_up_to_the_log_odds(client: TestClient, instances: list[dict]) -> None:
    answer = _post(client, RISK, {"instances": instances, "explain": True})
    assert answer["explanation"] == {"method": "coefficient x standardised value", "unit": "log-odds"}
    for prediction in answer["predictions"]:
        contributions = prediction["contributions"]
        assert {c["feature"] for c in contributions} == FEATURES  # four features, all within the top five
        sizes = [abs(c["contribution"]) for c in contributions]
        assert sizes == sorted(sizes, reverse=True)
        log_odds = prediction["bias"] + sum(c["contribution"] for c in contributions)
        assert math.isclose(1 / (1 + math.exp(-log_odds)), prediction["score"], abs_tol=1e-5)
    hot = answer["predictions"][0]["contributions"]
    assert next(c for c in hot if c["feature"] == "temp")["value"] == 99.5


def test_tree_contributions_add_up_to_the_probability(client: TestClient, instances: list[dict]) -> None:
    answer = _post(client, OTHER, {"instances": instances, "explain": True})
    assert answer["explanation"]["unit"] == "probability"
    for prediction in answer["predictions"]:
        total = prediction["bias"] + sum(c["contribution"] for c in prediction["contributions"])
        assert math.isclose(total, prediction["score"], abs_tol=1e-5)


def test_without_explain_the_answer_is_unchanged(client: TestClient, instances: list[dict]) -> None:
    answer = _post(client, RISK, {"instances": instances})
    assert "explanation" not in answer
    assert all("contributions" not in p for p in answer["predictions"])
    for wrong in (3, 0, "true"):  # a boolean only: schemathesis counts a coerced 0 as a violating request accepted
        body = {"instances": instances, "explain": wrong}
        refused = client.post(f"/v1/models/{RISK}/predict", headers=auth(), json=body)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "explain", wrong


def test_the_contract_documents_explain(client: TestClient) -> None:
    schema = client.get("/openapi.json", headers=auth()).json()
    bodies = [s for name, s in schema["components"]["schemas"].items() if name.endswith("PredictRequest")]
    assert bodies and all(s["properties"]["explain"]["type"] == "boolean" for s in bodies)
    prediction = schema["components"]["schemas"]["Prediction"]["properties"]
    assert "contributions" in prediction and "bias" in prediction
