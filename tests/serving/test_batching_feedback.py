"""Micro-batching (identical answers, fewer model calls, isolated failures) and the feedback log, in process on
the real trained champions."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.catalog import delta_relation_sql
from serving.app import create_app
from serving.batching import MicroBatcher
from serving.loaded_models import ServedModel
from serving.prediction_log import (
    ARROW_CHUNK_ITEMS,
    FEEDBACK_SCHEMA,
    PredictionLog,
    Served,
    feedback_table,
    feedback_uri,
    prepare,
)
from tests.serving.conftest import KEYS, RISK, auth


@pytest.fixture(scope="module")
def risk_model(served_workspace: Path) -> ServedModel:
    from mlops.registry import mlflow_client
    from serving.loaded_models import load_champion

    workspace = Workspace.open(served_workspace)
    model = load_champion(workspace, mlflow_client(workspace), RISK, 1000)
    assert model is not None
    return model


def _rows(n: int) -> list[dict[str, Any]]:
    kinds = ["van", "rigid", "tractor"]
    return [
        {"truck_type": kinds[i % 3], "temp": 80.0 + (i * 7) % 30, "vibration": 2 + (i % 11) / 5, "hours": i % 9 * 1.0}
        for i in range(n)
    ]


async def _concurrently(batcher: MicroBatcher, model: ServedModel, rows: list[dict[str, Any]]) -> list[Any]:
    async def one(row: dict[str, Any]) -> Any:
        batcher.expect()
        await asyncio.sleep(0)  # let every caller arrive, as concurrent HTTP requests do
        batcher.unexpect()
        return await batcher.submit(model, [row])

    try:
        return await asyncio.gather(*(one(row) for row in rows), return_exceptions=True)
    finally:
        await batcher.close()


def test_batched_scores_are_identical_to_unbatched_and_in_order(risk_model: ServedModel) -> None:
    rows = _rows(200)
    batcher = MicroBatcher(RISK, max_wait_s=0.002, max_rows=64)
    results = asyncio.run(_concurrently(batcher, risk_model, rows))
    alone = [risk_model.predict([row]) for row in rows]
    # same order, same values: BLAS may sum a 64-row product in another order than a 1-row one (last-ulp noise)
    assert [raw[0] for raw, _ in results] == [pytest.approx(raw[0], rel=1e-12, abs=1e-15) for raw, _ in alone]
    assert [p[0]["score"] for _, p in results] == pytest.approx([p[0]["score"] for _, p in alone], rel=1e-12)
    assert [p[0]["prediction"] for _, p in results] == [p[0]["prediction"] for _, p in alone]
    assert len({p[0]["prediction_id"] for _, p in results}) == 200
    assert batcher.requests == 200
    assert batcher.calls < 200 / 4, f"{batcher.calls} model calls for 200 concurrent requests: not batching"


def test_a_failing_request_does_not_fail_the_others(risk_model: ServedModel) -> None:
    class FailsOnColdTrucks:
        """The real pipeline, failing for any frame holding a row with temp < 0 (a model bug on odd input)."""

        def __init__(self, real: Any) -> None:
            self.real = real
            self.classes_ = real.classes_

        def predict_proba(self, frame: Any) -> Any:
            if (frame["temp"] < 0).any():
                raise ValueError("cannot score a frozen engine")
            return self.real.predict_proba(frame)

    model = dataclasses.replace(risk_model, model=FailsOnColdTrucks(risk_model.model))
    rows = _rows(30)
    rows[7] = {**rows[7], "temp": -5.0}
    batcher = MicroBatcher(RISK, max_wait_s=0.002, max_rows=64)
    results = asyncio.run(_concurrently(batcher, model, rows))
    assert isinstance(results[7], ValueError)
    good = [r for i, r in enumerate(results) if i != 7]
    assert all(isinstance(r, tuple) for r in good)
    expected = [risk_model.predict([r])[1][0]["score"] for r in rows if r["temp"] >= 0]
    assert [p[0]["score"] for _, p in good] == pytest.approx(expected, rel=1e-12)


def test_a_lone_request_does_not_wait(risk_model: ServedModel) -> None:
    """Nobody else on the way: dispatched at once, even with a long maximum wait."""

    async def lone() -> float:
        batcher = MicroBatcher(RISK, max_wait_s=5.0, max_rows=64)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.submit(risk_model, _rows(1))
        await batcher.close()
        return loop.time() - started

    assert asyncio.run(lone()) < 5.0  # would be >= 5 s if it waited for the bound


def test_batched_and_unbatched_apps_answer_the_same(
    served_workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from foundation.core.settings_profiles import load_settings

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    settings = load_settings(served_workspace)
    answers = {}
    for batching in (True, False):
        api = settings.api.model_copy(update={"batching": batching, "prediction_log": False})
        with TestClient(create_app(served_workspace, settings.model_copy(update={"api": api}))) as client:
            body = {"instances": _rows(5)}
            response = client.post(f"/v1/models/{RISK}/predict", headers=auth(), json=body)
            assert response.status_code == 200
            answers[batching] = [p["score"] for p in response.json()["predictions"]]
            metrics = client.get("/metrics", headers=auth()).text
            assert ("foundation_api_batch_rows_count" in metrics) is batching
    assert answers[True] == pytest.approx(answers[False], rel=1e-12)


# -- the feedback log ---------------------------------------------------------------------------------------------


def _served(n: int, request_id: str = "r1") -> Served:
    rows = _rows(n)
    predictions = [{"prediction_id": f"{request_id}-{i}", "prediction": i % 2 == 0, "score": i / 10} for i in range(n)]
    return Served(RISK, 3, request_id, "key-abc", 1_700_000_000.0, rows, predictions)


def test_feedback_table_has_one_row_per_prediction_with_json_inputs() -> None:
    table = feedback_table([prepare(_served(2)), prepare(_served(1, "r2"))])
    rows = table.to_pylist()
    assert [r["prediction_id"] for r in rows] == ["r1-0", "r1-1", "r2-0"]
    assert [r["request_id"] for r in rows] == ["r1", "r1", "r2"]
    assert json.loads(rows[1]["inputs"]) == _rows(2)[1]
    assert rows[0]["prediction"] == "true" and rows[0]["model_version"] == 3
    assert str(rows[0]["predicted_at"]).startswith("2023-11-14 22:13:20")


def test_feedback_table_keeps_every_prediction_in_order_across_chunks() -> None:
    requests = [prepare(_served(2, f"r{i}")) for i in range(2 * ARROW_CHUNK_ITEMS + 1)]
    table = feedback_table(requests)
    assert table.schema == FEEDBACK_SCHEMA
    assert table["prediction_id"].to_pylist() == [f"r{i}-{j}" for i in range(len(requests)) for j in range(2)]
    assert feedback_table([]).num_rows == 0


def record_all(log: PredictionLog, *served: Served) -> None:
    """Record requests concurrently, as the event loop does (returns once all are durable in the spool)."""

    async def main() -> None:
        await asyncio.gather(*(log.record(item) for item in served))

    asyncio.run(main())


def test_feedback_log_flushes_by_rows_and_on_close_and_joins_in_duckdb(tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("{}\n", encoding="utf-8")
    workspace = Workspace.open(tmp_path)
    written: list[int] = []
    log = PredictionLog(workspace, flush_s=600, flush_rows=4, capacity=100, on_written=lambda m, n: written.append(n))
    record_all(log, _served(5, "a"))  # over flush_rows: the flusher wakes up at once
    record_all(log, _served(2, "b"))
    log.close()
    assert sum(written) == 7 and log.refused == 0
    uri = feedback_uri(workspace, RISK)
    assert uri == f"{tmp_path}/.foundation/lakehouse/ml/fleet/risk/api_predictions"
    con = duckdb.connect()
    con.execute("create table truth as select * from (values ('van', true), ('rigid', false)) t(truck_type, failed)")
    joined = con.execute(
        f"select count(*) from {delta_relation_sql(con, uri)} p join truth "
        "on json_extract_string(p.inputs, '$.truck_type') = truth.truck_type"
    ).fetchall()
    assert joined[0][0] == len([r for r in _rows(5) + _rows(2) if r["truck_type"] in ("van", "rigid")])
    assert DeltaTable(uri).version() >= 0


def test_feedback_log_over_its_memory_reads_the_spool_back_and_drops_nothing(tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("{}\n", encoding="utf-8")
    workspace = Workspace.open(tmp_path)
    log = PredictionLog(workspace, flush_s=600, flush_rows=1000, capacity=3)
    record_all(log, _served(2, "a"), _served(2, "b"), _served(1, "c"))  # 5 rows > 3 kept in memory
    record_all(log, _served(1, "d"))
    log.close()
    assert log.read_back >= 2  # a and b (over the memory) read back from the spool by a flush
    ids = DeltaTable(feedback_uri(workspace, RISK)).to_pyarrow_table()["prediction_id"].to_pylist()
    assert sorted(ids) == ["a-0", "a-1", "b-0", "b-1", "c-0", "d-0"]
    assert log.written == 6 and log.refused == 0
