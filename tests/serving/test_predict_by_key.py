"""Score by key (`POST /v1/models/{name}/predict-by-key`) and the batch predictions (`GET .../predictions`), on the
trained test workspace: real Delta feature table, real MLflow models, the app's lifespan (lookup index built at
start-up, rebuilt when the table gets a new version), the real prediction log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake
from fastapi.testclient import TestClient

from foundation.core.workspace import Workspace
from tests.serving.conftest import KEYS, OTHER, RISK, RISK_KEY, auth

FEATURES = ["truck_type", "temp", "vibration", "hours"]
ERROR_KEYS = {"detail", "errors", "request_id"}


def gold(root: Path) -> str:
    return f"{Workspace.open(root).lakehouse_root}/gold/fleet/features_day"


def latest_row(root: Path, truck: str) -> dict[str, Any]:
    frame = DeltaTable(gold(root)).to_pandas()
    rows = frame[frame["truck_id"] == truck].sort_values("date_day")
    return rows.iloc[-1].to_dict()


@pytest.fixture
def own_client(own_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from serving.app import create_app

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    monkeypatch.setenv("FOUNDATION_API__RELOAD_INTERVAL_S", "0")  # the test runs the refresh tick itself
    with TestClient(create_app(own_workspace), raise_server_exceptions=False) as test_client:
        yield test_client


def by_key(client: TestClient, keys: list[dict[str, Any]], model: str = RISK, key: str | None = None) -> Any:
    return client.post(f"/v1/models/{model}/predict-by-key", json={"keys": keys}, headers=auth(key) if key else auth())


def test_a_key_is_scored_on_its_latest_feature_row(client: TestClient, served_workspace: Path) -> None:
    answer = by_key(client, [{"truck_id": "T001"}, {"truck_id": "NOPE"}, {"truck_id": "T004"}])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["feature_table"] == "fleet/features_day" and body["feature_table_version"] == 0
    first, unknown, third = body["predictions"]
    row = latest_row(served_workspace, "T001")
    assert first["found"] and first["as_of"] == row["date_day"].isoformat()
    assert first["features"] == pytest.approx({c: row[c] for c in FEATURES})
    # the same row sent to /predict gets the same score from the same model
    plain = client.post(f"/v1/models/{RISK}/predict", json={"instances": [first["features"]]}, headers=auth())
    assert first["score"] == pytest.approx(plain.json()["predictions"][0]["score"], abs=1e-12)
    assert first["model"] == RISK and first["prediction_id"]
    assert unknown["found"] is False and unknown["score"] is None
    assert (
        "T001" not in unknown["detail"] and "'NOPE'" in unknown["detail"] and "fleet/features_day" in unknown["detail"]
    )
    assert third["found"] and third["key"] == {"truck_id": "T004"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"keys": [{"truck_id": 7}]}, "keys[0].truck_id"),  # a number for a text key
        ({"keys": [{}]}, "keys[0].truck_id"),  # the entity column missing
        ({"keys": [{"truck_id": "T001", "temp": 1.0}]}, "keys[0].temp"),  # not an entity column
        ({"keys": []}, "keys"),
        ({"truck_id": "T001"}, "keys"),
    ],
)
def test_bad_keys_are_a_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    answer = client.post(f"/v1/models/{RISK}/predict-by-key", json=body, headers=auth())
    assert answer.status_code == 422, answer.text
    assert set(answer.json()) == ERROR_KEYS
    assert field in [item["field"] for item in answer.json()["errors"]]


def test_unknown_model_scoped_key_and_no_key_are_clear_4xx(client: TestClient) -> None:
    keys = [{"truck_id": "T001"}]
    cases = [
        (by_key(client, keys, model="fleet__nope"), 404, "no served model named 'fleet__nope'"),
        (by_key(client, keys, model=OTHER, key=RISK_KEY), 403, "may not use the model 'fleet__other'"),
        (client.post(f"/v1/models/{RISK}/predict-by-key", json={"keys": keys}), 401, "missing API key"),
    ]
    for answer, status, detail in cases:
        assert answer.status_code == status, answer.text
        assert set(answer.json()) == ERROR_KEYS and detail in answer.json()["detail"]


def test_the_index_follows_new_table_versions_and_is_not_rebuilt_otherwise(
    own_client: TestClient, own_workspace: Path
) -> None:
    state = own_client.app.state  # type: ignore[attr-defined]
    lookups = state.lookups
    before = lookups.indexes[RISK]
    own_client.portal.call(lookups.refresh, state.models)  # a tick with no new version: the same index
    assert lookups.indexes[RISK] is before
    row = latest_row(own_workspace, "T002")
    newer = {**row, "date_day": row["date_day"] + timedelta(days=1), "temp": 120.0}
    write_deltalake(gold(own_workspace), pd.DataFrame([newer]), mode="append")
    assert by_key(own_client, [{"truck_id": "T002"}]).json()["feature_table_version"] == 0  # until the tick
    own_client.portal.call(lookups.refresh, state.models)
    body = by_key(own_client, [{"truck_id": "T002"}]).json()
    assert body["feature_table_version"] == 1
    item = body["predictions"][0]
    assert item["as_of"] == newer["date_day"].isoformat() and item["features"]["temp"] == 120.0


def test_an_unreadable_table_is_a_503_until_it_is_back(own_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.app import create_app

    table = Path(gold(own_workspace))
    table.rename(table.with_name("moved"))
    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    with TestClient(create_app(own_workspace), raise_server_exceptions=False) as client:
        answer = by_key(client, [{"truck_id": "T001"}])
        assert answer.status_code == 503 and "fleet/features_day cannot be read" in answer.json()["detail"]
        table.with_name("moved").rename(table)
        client.portal.call(client.app.state.lookups.refresh, client.app.state.models)  # type: ignore[attr-defined]
        assert by_key(client, [{"truck_id": "T001"}]).status_code == 200


def test_batch_predictions_newest_first_filtered_and_logged(own_client: TestClient, own_workspace: Path) -> None:
    from mlops.inference import batch_score, predictions_uri
    from tests.mlops.conftest import MlWorkspace

    url = f"/v1/models/{RISK}/predictions"
    before = own_client.get(url, headers=auth())
    assert before.status_code == 404 and "no batch predictions" in before.json()["detail"]
    ref = MlWorkspace(own_workspace).ref("risk")
    batch_score(Workspace.open(own_workspace), ref)
    answer = own_client.get(url, params={"truck_id": "T003", "limit": 3}, headers=auth())
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    stored = DeltaTable(predictions_uri(Workspace.open(own_workspace), ref)).to_pandas()
    expected = stored[stored["truck_id"] == "T003"].sort_values("date_day", ascending=False).head(3)
    assert [r["prediction_id"] for r in rows] == list(expected["prediction_id"])
    assert [r["as_of"] for r in rows] == [d.isoformat() for d in expected["date_day"]]
    assert {r["key"]["truck_id"] for r in rows} == {"T003"}
    latest = own_client.get(url, params={"limit": 2}, headers=auth()).json()["predictions"]
    assert {r["as_of"] for r in latest} == {max(stored["date_day"]).isoformat()}
    for params, field in (({"truck": "T003"}, "query.truck"), ({"limit": 0}, "query.limit")):
        refused = own_client.get(url, params=params, headers=auth())
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field
    # the rows served are in the prediction log, under their batch prediction ids
    own_client.app.state.prediction_log.flush()  # type: ignore[attr-defined]
    logged = logged_ids(own_workspace)
    assert {r["prediction_id"] for r in rows} <= logged


def logged_ids(root: Path) -> set[str]:
    uri = f"{Workspace.open(root).lakehouse_root}/ml/fleet/risk/api_predictions"
    return {r[0] for r in duckdb.sql(f"select prediction_id from read_parquet('{uri}/*.parquet')").fetchall()}


def test_predict_by_key_is_logged_with_the_key_and_as_of(own_client: TestClient, own_workspace: Path) -> None:
    body = by_key(own_client, [{"truck_id": "T005"}]).json()
    own_client.app.state.prediction_log.flush()  # type: ignore[attr-defined]
    uri = f"{Workspace.open(own_workspace).lakehouse_root}/ml/fleet/risk/api_predictions"
    rows = duckdb.sql(
        f"select json_extract_string(inputs, '$.truck_id'), json_extract_string(inputs, '$.date_day'), score "
        f"from read_parquet('{uri}/*.parquet') where prediction_id = ?",
        params=[body["predictions"][0]["prediction_id"]],
    ).fetchall()
    item = body["predictions"][0]
    assert rows == [("T005", item["as_of"], pytest.approx(item["score"]))]
    assert date.fromisoformat(item["as_of"])


def test_a_hot_reloaded_model_gets_its_index_rebuilt_at_the_next_tick(own_client: TestClient) -> None:
    from dataclasses import replace

    state = own_client.app.state  # type: ignore[attr-defined]
    before = state.lookups.indexes[RISK]
    state.models = {**state.models, RISK: replace(state.models[RISK], version=2)}  # what a hot reload swaps in
    own_client.portal.call(state.lookups.refresh, state.models)
    after = state.lookups.indexes[RISK]
    assert after is not before and (before.model_version, after.model_version) == (1, 2)
    assert after.table_version == before.table_version and after.rows == before.rows
    assert by_key(own_client, [{"truck_id": "T001"}]).json()["version"] == 2
