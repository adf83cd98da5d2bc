"""Hostile input to the API (issue 14): non-finite numbers, NaN decided by the signature, `true` for a number,
integers beyond their width, lone surrogates, malformed bodies, a model that raises on one request, HEAD on the
health routes and `/metrics` read with a key scoped to one model. The fast path and FastAPI's routes answer these
the same: tests/serving/test_fast_routes.py sends them both ways."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from foundation.core.workspace import Workspace
from serving.batching import REFUSAL_WAIT_MAX_S, MicroBatcher
from serving.errors import InvalidInput, malformed_body
from serving.loaded_models import ServedModel
from serving.metrics import ApiMetrics
from serving.model_errors import ModelErrors, error_kind
from serving.schemas import ColumnSpec, batch_model, check_unicode, row_model
from tests.serving.conftest import ALL_KEY, OTHER, RISK, RISK_KEY, auth

COLUMNS = [
    ColumnSpec("truck_type", "string", True),
    ColumnSpec("temp", "double", True),
    ColumnSpec("hours", "double", False),
    ColumnSpec("cycles", "long", False),
    ColumnSpec("gear", "integer", True),
]
GOOD = {"truck_type": "van", "temp": 97.5, "gear": 3}


def _problems(row: dict[str, Any]) -> set[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        row_model("uc__m", COLUMNS).model_validate(row)
    return {(str(e["loc"][0]), e["type"]) for e in info.value.errors()}


def _valid(row: dict[str, Any]) -> dict[str, Any]:
    return row_model("uc__m", COLUMNS).model_validate(row).model_dump(by_alias=True)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (math.inf, "finite_number"),
        (-math.inf, "finite_number"),
        (math.nan, "finite_number"),  # temp is required: the model cannot take it missing
        ("Infinity", "finite_number"),
        ("-inf", "finite_number"),
        ("NaN", "finite_number"),
        (True, "number_type"),
        (False, "number_type"),
        (None, "float_type"),
        (10**400, "float_type"),
    ],
)
def test_a_required_double_takes_only_finite_numbers(value: Any, kind: str) -> None:
    assert _problems({**GOOD, "temp": value}) == {("temp", kind)}


def test_nan_in_an_optional_column_is_missing_and_infinity_is_still_refused() -> None:
    assert _valid({**GOOD, "hours": math.nan, "cycles": math.nan})["hours"] is None
    assert _valid({**GOOD, "hours": None})["hours"] is None
    assert _valid({**GOOD, "hours": 1.5, "cycles": 7}) == {**GOOD, "temp": 97.5, "hours": 1.5, "cycles": 7}
    assert _problems({**GOOD, "hours": math.inf}) == {("hours", "finite_number")}
    assert _problems({**GOOD, "hours": True}) == {("hours", "number_type")}


def test_integers_stay_within_their_width_and_are_never_booleans() -> None:
    assert _valid({**GOOD, "cycles": 2**63 - 1, "gear": -(2**31)})["cycles"] == 2**63 - 1
    assert _problems({**GOOD, "cycles": 2**63}) == {("cycles", "less_than_equal")}
    assert _problems({**GOOD, "gear": 2**31}) == {("gear", "less_than_equal")}
    assert _problems({**GOOD, "gear": True}) == {("gear", "integer_type")}
    assert _problems({**GOOD, "gear": math.inf}) == {("gear", "finite_number")}


def test_the_422_names_the_field_of_a_non_finite_number() -> None:
    request = batch_model("uc__m", row_model("uc__m", COLUMNS), 10)
    with pytest.raises(ValidationError) as info:
        request.model_validate({"instances": [GOOD, {**GOOD, "temp": math.inf}]})
    assert InvalidInput.from_validation(info.value).items == [
        {"field": "instances[1].temp", "message": "Input should be a finite number", "type": "finite_number"}
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"instances": [{"truck_type": "\\ud800"}]}', "instances[0].truck_type"),
        ('{"instances": [{"a": "ok"}, {"a": "x\\udfffy"}]}', "instances[1].a"),
        ('{"dataframe_split": {"columns": ["a"], "data": [["ok", "\\udc00"]]}}', "dataframe_split.data[0][1]"),
        ('{"instances": [{"\\ud800": 1}]}', "instances[0].\\ud800"),
        ('"\\ud800"', "body"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_where_it_is(body: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_unicode(json.loads(body))
    assert [(i["field"], i["type"]) for i in caught.value.items] == [(field, "string_unicode")]
    json.dumps(caught.value.items).encode("utf-8")  # the answer itself is valid UTF-8


def test_paired_surrogates_and_big_integers_are_fine() -> None:
    check_unicode(json.loads('{"a": "\\ud83d\\ude00 truck", "b": [12345678901234567890123], "c": "été"}'))


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"instances": [', "not valid JSON at character 15"),
        (b'{"instances": "\xff"}', "not valid JSON: not UTF-8 text (byte 15)"),
        (b"[" * 100_000, "not valid JSON: nested too deeply"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON: a value the parser refuses (a number too long?)"),
    ],
)
def test_every_malformed_body_has_one_shape(body: bytes, says: str) -> None:
    try:
        json.loads(body)
    except Exception as exc:
        malformed = malformed_body(exc)
    assert malformed is not None
    assert malformed.items == [{"field": "body", "message": says, "type": "json_invalid"}]
    assert malformed_body(KeyError("x")) is None


# -- errors of the model ----------------------------------------------------------------------------------------


def _raise(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def test_a_repeated_model_error_logs_its_traceback_once_then_counts(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    counter = Counter("errors", "test", ["model", "version", "error"], registry=registry)
    now = [0.0]
    errors = ModelErrors(counter, summary_every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="serving.model_errors"):
        for i in range(100):
            now[0] = i * 0.5  # 50 s of errors
            errors.report("uc__m", 3, _raise(ValueError(f"cannot score row {i}")), f"req-{i}")
        assert [r.levelname for r in caplog.records] == ["ERROR"]
        assert caplog.records[0].exc_info is not None and "req-0" in caplog.records[0].getMessage()
        now[0] = 61.0
        errors.report("uc__m", 3, _raise(ValueError("again")), "req-last")
        errors.report("uc__m", 3, _raise(KeyError("another kind")), "req-key")
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING", "ERROR"]
    assert "again 100 time(s)" in caplog.records[1].getMessage()
    assert registry.get_sample_value("errors_total", {"model": "uc__m", "version": "3", "error": "ValueError"}) == 101
    assert error_kind(_raise(ValueError()))[0] == "ValueError"
    assert error_kind(ValueError())[1] == "?"


@pytest.fixture(scope="module")
def risk_model(served_workspace: Path) -> ServedModel:
    from mlops.registry import mlflow_client
    from serving.loaded_models import load_champion

    workspace = Workspace.open(served_workspace)
    model = load_champion(workspace, mlflow_client(workspace), RISK, 1000)
    assert model is not None
    return model


class FailsOnColdTrucks:
    """The real pipeline, failing for any frame holding a row with temp < 0 (a model bug on odd input)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.classes_ = real.classes_
        self.rows_scored: list[int] = []

    def predict_proba(self, frame: Any) -> Any:
        self.rows_scored.append(len(frame))
        if (frame["temp"] < 0).any():
            raise ValueError("cannot score a frozen engine")
        return self.real.predict_proba(frame)


def _row(i: int) -> dict[str, Any]:
    return {"truck_type": ("van", "rigid", "tractor")[i % 3], "temp": 80.0 + i % 30, "vibration": 3.0, "hours": 1.0}


async def _one_batch(batcher: MicroBatcher, model: ServedModel, rows: list[dict[str, Any]]) -> list[Any]:
    """Every row a request of its own, all queued before the dispatcher runs: one gathered batch."""
    for _ in rows:
        batcher.expect()
    loop = asyncio.get_running_loop()

    async def one(row: dict[str, Any]) -> Any:
        batcher.unexpect()  # validated: queued next
        return await batcher.submit(model, [row])

    tasks = [loop.create_task(one(row)) for row in rows]
    try:
        return await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await batcher.close()


@pytest.mark.parametrize("bad", [[0], [31], [17], [5, 6], list(range(32))])
def test_a_failing_request_is_isolated_by_bisection(risk_model: ServedModel, bad: list[int]) -> None:
    failing = FailsOnColdTrucks(risk_model.model)
    model = dataclasses.replace(risk_model, model=failing)
    rows = [_row(i) for i in range(32)]
    for i in bad:
        rows[i] = {**rows[i], "temp": -5.0}
    batcher = MicroBatcher(RISK, max_wait_s=1.0, max_rows=64)
    results = asyncio.run(_one_batch(batcher, model, rows))
    assert [i for i, r in enumerate(results) if isinstance(r, ValueError)] == bad
    good = [(row, r) for i, (row, r) in enumerate(zip(rows, results, strict=True)) if i not in bad]
    expected = [risk_model.predict([row])[1][0]["score"] for row, _ in good]
    assert [r[1][0]["score"] for _, r in good] == pytest.approx(expected, rel=1e-12)
    assert failing.rows_scored[0] == 32  # one gathered call first
    if len(bad) == 1:  # the whole batch, then two halves per level: 1 + 2*log2(32) calls (was 1 + 32)
        assert batcher.calls == len(failing.rows_scored) == 11
        assert sum(failing.rows_scored) == 32 + 2 * (16 + 8 + 4 + 2 + 1)
    assert batcher.calls == len(failing.rows_scored) <= 2 * 32 - 1


def test_a_refusal_waits_as_long_as_a_valid_answer_takes() -> None:
    """A client sending what cannot be scored must not get ahead of the valid ones (closed-loop, it would take the
    CPU that scores them): its 422 goes out no sooner than a valid request is typically answered."""
    batcher = MicroBatcher(RISK, max_wait_s=0.002, max_rows=64)
    assert batcher.refusal_wait(0.0) == 0.0  # nothing answered yet: a refusal goes out at once
    for _ in range(200):
        batcher.answered(0.040)
    assert batcher.answer_s == pytest.approx(0.040, rel=1e-6)
    assert batcher.refusal_wait(0.010) == pytest.approx(0.030, rel=1e-6)
    assert batcher.refusal_wait(0.050) == 0.0
    batcher.answered(0.140)  # a moving average: one slow answer moves it a tenth of the way
    assert batcher.answer_s == pytest.approx(0.050, rel=1e-6)
    for _ in range(200):
        batcher.answered(30.0)  # a very slow model: a refusal waits at most REFUSAL_WAIT_MAX_S
    assert batcher.refusal_wait(0.0) == REFUSAL_WAIT_MAX_S
    refusal = InvalidInput([{"field": "instances[0].temp", "message": "finite", "type": "finite_number"}])
    with pytest.raises(InvalidInput) as caught:
        asyncio.run(batcher.refuse(refusal, elapsed_s=5.0))
    assert caught.value is refusal


def test_a_connection_refused_again_and_again_waits_twice_as_long_each_time() -> None:
    batcher = MicroBatcher(RISK, max_wait_s=0.002, max_rows=64, answer_s=0.010)
    abuser, other = ("127.0.0.1", 50001), ("127.0.0.1", 50002)
    waits = [batcher.refusal_wait(0.0, abuser) for _ in range(9)]
    assert waits == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0])  # capped at 1 s
    assert batcher.refusal_wait(0.0, other) == pytest.approx(0.01)  # another connection: its own count
    batcher.answered(0.010, abuser)  # a valid answer resets the connection
    assert batcher.refusal_wait(0.0, abuser) == pytest.approx(0.01)


def test_the_scoring_path_paces_refusals_by_the_valid_answers(client: TestClient, instances: list[dict]) -> None:
    url = f"/v1/models/{RISK}/predict"
    for _ in range(3):
        assert client.post(url, headers=auth(), json={"instances": instances}).status_code == 200
    batcher = client.app.state.batchers[RISK]
    assert batcher.answer_s > 0  # measured from the valid answers
    before = batcher.answer_s
    body = json.dumps({"instances": [{**instances[0], "temp": math.inf}]}).encode()  # the token Infinity
    refused = client.post(url, headers={**auth(), "Content-Type": "application/json"}, content=body)
    assert refused.status_code == 422 and batcher.answer_s == before  # refusals do not feed the average


def test_a_failing_model_logs_once_counts_and_answers_500(
    client: TestClient, instances: list[dict], caplog: pytest.LogCaptureFixture
) -> None:
    served = client.app.state.models[RISK]
    served.model = FailsOnColdTrucks(served.model)
    cold = {"instances": [{**instances[0], "temp": -5.0}]}
    with caplog.at_level(logging.INFO):
        answers = [client.post(f"/v1/models/{RISK}/predict", headers=auth(), json=cold) for _ in range(5)]
        # a big request goes to the model alone (no micro-batch): the same handling
        big = client.post(f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": cold["instances"] * 200})
    for answer in [*answers, big]:
        assert answer.status_code == 500
        assert answer.json()["detail"].startswith("the model could not score this request")
        assert "frozen engine" not in answer.text and "Traceback" not in answer.text
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1 and answers[0].json()["request_id"] in tracebacks[0].getMessage()
    assert len(caplog.text) < 20_000
    metrics = client.get("/metrics", headers=auth()).text
    line = next(m for m in metrics.splitlines() if m.startswith("foundation_api_model_errors_total{"))
    assert f'model="{RISK}"' in line and 'error="ValueError"' in line and line.endswith(" 6.0")
    good = client.post(f"/v1/models/{RISK}/predict", headers=auth(), json={"instances": instances})
    assert good.status_code == 200


def test_nan_in_a_column_the_signature_makes_optional_is_scored_as_missing(
    risk_model: ServedModel, instances: list[dict]
) -> None:
    assert risk_model.columns is not None
    columns = [dataclasses.replace(c, required=c.name != "hours") for c in risk_model.columns]
    row = row_model(RISK, columns)
    optional = dataclasses.replace(risk_model, columns=columns, row_model=row, request_model=batch_model(RISK, row, 10))
    with_nan = optional.validate({"instances": [{**instances[0], "hours": math.nan}]})
    with_null = optional.validate({"instances": [{**instances[0], "hours": None}]})
    assert with_nan == with_null and with_nan[0]["hours"] is None
    scored = optional.predict(with_nan)[1][0]["score"]
    assert scored == optional.predict(with_null)[1][0]["score"]
    assert scored != optional.predict([instances[0]])[1][0]["score"]  # missing is not the value it replaced
    with pytest.raises(InvalidInput) as caught:  # required in the real signature: a 422 naming it
        risk_model.validate({"instances": [{**instances[0], "hours": math.nan}]})
    assert caught.value.items[0]["field"] == "instances[0].hours"


# -- health, metrics ---------------------------------------------------------------------------------------------


def test_head_on_the_health_routes(client: TestClient) -> None:
    for path in ("/health/live", "/health/ready"):
        got = client.head(path)
        assert got.status_code == client.get(path).status_code == 200, path
        assert got.content == b"" and got.headers["x-request-id"]
    assert client.head("/health/nope").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/health/live"]) == {"get"}  # HEAD works without a second operation in the document


def test_a_scoped_key_reads_only_its_models_series_on_metrics(client: TestClient, instances: list[dict]) -> None:
    for name in (RISK, OTHER):
        assert (
            client.post(f"/v1/models/{name}/predict", headers=auth(), json={"instances": instances}).status_code == 200
        )
    everything = client.get("/metrics", headers=auth(ALL_KEY)).text
    scoped = client.get("/metrics", headers=auth(RISK_KEY)).text
    assert f'model="{OTHER}"' in everything and f'model="{RISK}"' in everything
    assert OTHER not in scoped
    assert f'foundation_api_predictions_total{{model="{RISK}"' in scoped
    assert "foundation_api_ready 1.0" in scoped  # series of no model stay
    # the same series, minus the other model's (the /metrics requests themselves are counted between the reads)
    assert [m for m in scoped.splitlines() if 'route="/metrics"' not in m] == [
        m for m in everything.splitlines() if OTHER not in m and 'route="/metrics"' not in m
    ]


def test_metrics_filter_keeps_series_without_a_model() -> None:
    metrics = ApiMetrics()
    metrics.observe_request("/health/live", "GET", "", 200, 0.001)
    metrics.observe_request("/v1/models/{name}/predict", "POST", "a", 200, 0.001)
    metrics.observe_request("/v1/models/{name}/predict", "POST", "b", 200, 0.001)
    text = metrics.render(lambda model: model == "a").decode()
    assert 'route="/health/live"' in text and 'model="a"' in text and 'model="b"' not in text
    assert 'model="b"' in metrics.render().decode()
