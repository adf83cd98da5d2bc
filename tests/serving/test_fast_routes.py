"""The lean ASGI scoring routes (serving.fast_routes) answer exactly as FastAPI's own routes do.

Every case is sent to the app twice, once with `api.fast_routes` on (the default) and once off, and the status,
the body (prediction and request ids aside) and the auth challenge must be the same."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.errors import InvalidInput
from serving.fast_routes import INVOCATIONS, NAMED_INVOCATIONS, PREDICT, decode_body, payload_of, route_of
from tests.serving.conftest import ALL_KEY, KEYS, OTHER, RISK, RISK_KEY

PREDICT_URL = f"/v1/models/{RISK}/predict"
INVOKE_URL = f"/v1/models/{RISK}/invocations"


def test_route_of_matches_only_the_scoring_routes() -> None:
    assert route_of(PREDICT_URL) == (PREDICT, RISK)
    assert route_of(INVOKE_URL) == (NAMED_INVOCATIONS, RISK)
    assert route_of("/invocations") == (INVOCATIONS, None)
    for other in ("/v1/models", f"/v1/models/{RISK}", f"/v1/models/{RISK}/predict/x", "/v1/models//predict", "/kpis"):
        assert route_of(other) is None, other


def parse_body(body: bytes, content_type: str = "application/json") -> dict:
    """What the handler does with a body: decoded, then required to be a JSON object."""
    return payload_of(decode_body(body, content_type))


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [(b"", "body", "missing"), (b'{"instances": [', "body", "json_invalid"), (b"[1, 2]", "body", "dict_type")],
)
def test_parse_body_names_what_is_wrong(body: bytes, field: str, kind: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_body(body)
    assert [(e["field"], e["type"]) for e in caught.value.items] == [(field, kind)]


def test_only_a_json_content_type_is_decoded() -> None:
    assert decode_body(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}
    assert decode_body(b'{"a": 1}', "application/problem+json") == {"a": 1}
    assert math.isnan(decode_body(b'{"a": NaN}', "application/json")["a"])  # json.loads' NaN, as FastAPI takes it
    for other in (None, "", "text/plain", "application/x-www-form-urlencoded"):
        assert decode_body(b'{"a": 1}', other) == b'{"a": 1}', other
    with pytest.raises(InvalidInput):
        parse_body(b'{"a": 1}', "text/plain")


def test_a_body_not_sent_as_json_says_how_to_send_it() -> None:
    for body, content_type in ((b'{"a": 1}', "text/plain"), (b"", "application/json"), (b"[1]", "application/json")):
        with pytest.raises(InvalidInput) as caught:
            parse_body(body, content_type)
        assert "Content-Type: application/json" in caught.value.items[0]["message"], (body, content_type)


def test_broken_json_names_the_character_where_it_breaks() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_body(b'{"instances": [')
    assert caught.value.items[0]["message"] == "not valid JSON at character 15"


@pytest.fixture(scope="module")
def both(served_workspace: Path) -> Iterator[dict[bool, TestClient]]:
    """The same workspace served twice: fast routes on and off (started once for the module)."""
    from serving.app import create_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FOUNDATION_API_KEYS", KEYS)
        patch.setenv("FOUNDATION_API__PREDICTION_LOG", "false")
        patch.setenv("FOUNDATION_API__MAX_BATCH_SIZE", "50")
        patch.setenv("FOUNDATION_API__FAST_ROUTES", "true")
        fast = TestClient(create_app(served_workspace), raise_server_exceptions=False)
        patch.setenv("FOUNDATION_API__FAST_ROUTES", "false")
        plain = TestClient(create_app(served_workspace), raise_server_exceptions=False)
    with fast, plain:
        yield {True: fast, False: plain}


def _cases(rows: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, str | None], Any]]:
    key = {"X-API-Key": ALL_KEY}
    columns = list(rows[0])
    split = {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}
    bad_type = [rows[0], {**rows[1], "temp": "hot"}]
    good = json.dumps({"instances": rows}).encode()
    return {
        "predict": (PREDICT_URL, key, {"instances": rows}),
        "predict, bearer": (PREDICT_URL, {"Authorization": f"Bearer {ALL_KEY}"}, {"instances": rows}),
        "dataframe_split": (INVOKE_URL, key, {"dataframe_split": split}),
        "dataframe_records": (INVOKE_URL, key, {"dataframe_records": rows}),
        "instances": (INVOKE_URL, key, {"instances": rows}),
        "inputs by column": (INVOKE_URL, key, {"inputs": {c: [r[c] for r in rows] for c in columns}}),
        "other model": (f"/v1/models/{OTHER}/predict", key, {"instances": rows}),
        "no key": (PREDICT_URL, {}, {"instances": rows}),
        "wrong key": (PREDICT_URL, {"X-API-Key": "nope"}, {"instances": rows}),
        "limited key": (f"/v1/models/{OTHER}/invocations", {"X-API-Key": RISK_KEY}, {"instances": rows}),
        "unknown model": ("/v1/models/fleet__nope/predict", key, {"instances": rows}),
        "two models on /invocations": ("/invocations", key, {"instances": rows}),
        "wrong type": (PREDICT_URL, key, {"instances": bad_type}),
        "unknown field": (PREDICT_URL, key, {"instances": [{**rows[0], "colour": "red"}]}),
        "wrong type, records": (INVOKE_URL, key, {"dataframe_records": bad_type}),
        "two formats": (INVOKE_URL, key, {"instances": rows, "inputs": rows}),
        "ragged split": (INVOKE_URL, key, {"dataframe_split": {"columns": ["temp"], "data": [[1, 2]]}}),
        "too many rows": (PREDICT_URL, key, {"instances": rows * 20}),
        "broken JSON": (PREDICT_URL, key, b'{"instances": ['),
        "a list body": (INVOKE_URL, key, b"[1, 2]"),
        "no body": (PREDICT_URL, key, b""),
        # FastAPI decodes JSON only for a JSON content type (`curl -d` sends a form's), with json.loads
        "no content type": (PREDICT_URL, {**key, "Content-Type": None}, good),
        "text/plain": (PREDICT_URL, {**key, "Content-Type": "text/plain"}, good),
        "a +json content type": (PREDICT_URL, {**key, "Content-Type": "application/vnd.api+json"}, good),
        # hostile numbers and text: a 422 naming the field on both paths (issue 14), never a 500
        "a NaN in a required column": (PREDICT_URL, key, good.replace(b"99.5", b"NaN", 1)),
        "Infinity": (PREDICT_URL, key, good.replace(b"99.5", b"Infinity", 1)),
        "-Infinity, records": (
            INVOKE_URL,
            key,
            json.dumps({"dataframe_records": rows}).encode().replace(b"85.0", b"-Infinity", 1),
        ),
        "1e400": (PREDICT_URL, key, good.replace(b"99.5", b"1e400", 1)),
        '"Infinity"': (PREDICT_URL, key, good.replace(b"99.5", b'"Infinity"', 1)),
        "true for a double": (PREDICT_URL, key, good.replace(b"99.5", b"true", 1)),
        "a lone surrogate": (PREDICT_URL, key, good.replace(b'"van"', b'"\\ud800"', 1)),
        "a lone surrogate as UTF-8 bytes": (PREDICT_URL, key, good.replace(b'"van"', b'"\xed\xa0\x80"', 1)),
        "a lone surrogate in a key, split": (
            INVOKE_URL,
            key,
            json.dumps({"dataframe_split": {**split, "columns": ["\ud800", *columns[1:]]}}).encode(),
        ),
        "a lone surrogate, no key": (PREDICT_URL, {}, good.replace(b'"van"', b'"\\udfff"', 1)),
        "nested too deeply": (PREDICT_URL, key, b"[" * 100_000),
        "a 5,000-digit number": (PREDICT_URL, key, good.replace(b"99.5", b"9" * 5000, 1)),
        "a BOM": (PREDICT_URL, key, b"\xef\xbb\xbf" + good),
        "not UTF-8": (PREDICT_URL, key, b'{"instances": "\xff"}'),
        "null": (PREDICT_URL, key, b"null"),
        # FastAPI reads and decodes the body before the key; the model (a dependency) before the body's shape
        "broken JSON, no key": (PREDICT_URL, {}, b'{"instances": ['),
        "a list body, no key": (PREDICT_URL, {}, b"[1, 2]"),
        "limited key, a list body": (f"/v1/models/{OTHER}/invocations", {"X-API-Key": RISK_KEY}, b"[1, 2]"),
        "unknown model, no body": ("/v1/models/fleet__nope/invocations", key, b""),
        "two models, a list body": ("/invocations", key, b"[1, 2]"),
    }


HOSTILE = (
    "a NaN in a required column",
    "Infinity",
    "-Infinity, records",
    "1e400",
    '"Infinity"',
    "true for a double",
    "a lone surrogate",
    "a lone surrogate as UTF-8 bytes",
    "a lone surrogate in a key, split",
    "nested too deeply",
    "a 5,000-digit number",
)


def _comparable(response: Any) -> tuple[int, Any, str | None]:
    body = response.json()
    body.pop("request_id", None)
    for prediction in body.get("predictions", []):
        if isinstance(prediction, dict):
            prediction.pop("prediction_id", None)
    return response.status_code, body, response.headers.get("www-authenticate")


def test_fast_routes_answer_as_fastapi_does(both: dict[bool, TestClient], instances: list[dict]) -> None:
    statuses = {}
    for case, (url, headers, body) in _cases(instances).items():
        answers = {}
        for fast, client in both.items():
            if isinstance(body, bytes):  # sent as JSON unless the case says otherwise (None: no content type)
                sent = {k: v for k, v in {"Content-Type": "application/json", **headers}.items() if v is not None}
                response = client.post(url, headers=sent, content=body)
            else:
                response = client.post(url, headers=headers, json=body)
            assert response.headers["x-request-id"], case
            if response.status_code != 200:
                assert response.json()["request_id"] == response.headers["x-request-id"], case
            answers[fast] = _comparable(response)
        assert answers[True] == answers[False], (case, json.dumps(answers, default=str)[:2000])
        statuses[case] = answers[True][0]
    # the battery covers every answer the routes give
    assert {s for s in statuses.values()} == {200, 400, 401, 403, 404, 422}
    assert statuses["predict"] == statuses["dataframe_split"] == 200
    # every malformed or hostile body is the same 422 on both paths (a 500 or FastAPI's 400 before issue 14)
    hostile = [c for c in statuses if c in HOSTILE or c in ("broken JSON", "not UTF-8")]
    assert {c: statuses[c] for c in hostile} == {c: 422 for c in hostile}
    assert statuses["a lone surrogate, no key"] == 401


def test_fast_routes_feed_the_metrics_by_route_template(both: dict[bool, TestClient], instances: list[dict]) -> None:
    client = both[True]
    client.post(PREDICT_URL, headers={"X-API-Key": ALL_KEY}, json={"instances": instances})
    metrics = client.get("/metrics", headers={"X-API-Key": ALL_KEY}).text
    line = next(m for m in metrics.splitlines() if m.startswith("foundation_api_requests_total") and "/predict" in m)
    assert 'route="/v1/models/{name}/predict"' in line and f'model="{RISK}"' in line and 'status="200"' in line
