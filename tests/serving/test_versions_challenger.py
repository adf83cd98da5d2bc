"""Versions and challengers (issue 16 item 4): `/v1/models/{name}/versions/{v}/predict` loads a registry version on
demand into a bounded cache; the `challenger` alias (`foundation models challenger`) is scored in shadow on a share
of the champion's requests, logged beside the champion's answer in `shadow_predictions`, never returned; the
use-case dashboard compares the two on the same requests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from foundation.core.workspace import Workspace
from foundation.specs.model import GateSpec
from mlops.registry import CHALLENGER, RegistryError, current_champion, mlflow_client, read_history, set_challenger
from serving.shadow import ShadowScoring, shadow_uri
from tests.serving.conftest import KEYS, OTHER, RISK, RISK_KEY, add_version, auth

ERROR_KEYS = {"detail", "errors", "request_id"}


@pytest.fixture
def versioned(own_workspace: Path) -> Path:
    """The trained workspace with a v2 of RISK that is another model (OTHER's decision tree): other answers."""
    client = mlflow_client(Workspace.open(own_workspace))
    other = current_champion(client, OTHER)
    assert add_version(own_workspace, RISK, source=other.source) == 2
    return own_workspace


def app_client(root: Path, monkeypatch: pytest.MonkeyPatch, **api: str) -> TestClient:
    from serving.app import create_app

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    for key, value in {"prediction_log": "false", **api}.items():
        monkeypatch.setenv(f"FOUNDATION_API__{key.upper()}", value)
    return TestClient(create_app(root), raise_server_exceptions=False)


def test_a_version_is_loaded_on_demand_once_and_unknown_ones_are_404(
    versioned: Path, monkeypatch: pytest.MonkeyPatch, instances: list[dict[str, Any]]
) -> None:
    with app_client(versioned, monkeypatch, version_cache_size="1") as client:
        body = {"instances": instances}
        champion = client.post(f"/v1/models/{RISK}/predict", json=body, headers=auth()).json()
        first = client.post(f"/v1/models/{RISK}/versions/1/predict", json=body, headers=auth()).json()
        assert first["version"] == 1 and [p["score"] for p in first["predictions"]] == [
            p["score"] for p in champion["predictions"]
        ]
        versions = client.app.state.versions
        assert versions.loads == 0  # the champion's version is the champion already loaded
        second = client.post(f"/v1/models/{RISK}/versions/2/predict", json=body, headers=auth())
        assert second.status_code == 200, second.text
        answer = second.json()
        assert answer["version"] == 2 and {p["version"] for p in answer["predictions"]} == {2}
        assert [p["score"] for p in answer["predictions"]] != [p["score"] for p in champion["predictions"]]
        client.post(f"/v1/models/{RISK}/versions/2/predict", json=body, headers=auth())
        assert versions.loads == 1  # cached
        for bad in ("3", "0", "-1", "99999999999999999999"):
            missing = client.post(f"/v1/models/{RISK}/versions/{bad}/predict", json=body, headers=auth())
            assert missing.status_code == 404, bad
            assert set(missing.json()) == ERROR_KEYS and "versions: 1, 2" in missing.json()["detail"]
        assert client.post(f"/v1/models/{RISK}/versions/two/predict", json=body, headers=auth()).status_code == 422
        assert client.post("/v1/models/nope/versions/1/predict", json=body, headers=auth()).status_code == 404
        scoped = client.post(f"/v1/models/{OTHER}/versions/1/predict", json=body, headers=auth(RISK_KEY))
        assert scoped.status_code == 403 and set(scoped.json()) == ERROR_KEYS
        assert client.post(f"/v1/models/{RISK}/versions/2/predict", json=body).status_code == 401
        bad_row = client.post(
            f"/v1/models/{RISK}/versions/2/predict", json={"instances": [{"temp": "hot"}]}, headers=auth()
        )
        assert bad_row.status_code == 422 and bad_row.json()["errors"]
        paths = client.get("/openapi.json").json()["paths"]
        operation = paths[f"/v1/models/{RISK}/versions/{{version}}/predict"]["post"]
        assert {"401", "403", "404", "413", "422", "500", "503"} <= set(operation["responses"])


def test_the_challenger_alias_is_set_by_the_cli_and_recorded(versioned: Path) -> None:
    foundation = str(Path(sys.executable).parent / "foundation")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [foundation, "--workspace", str(versioned), "models", "challenger", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    done = cli(RISK, "2", "--reason", "try the tree")
    assert done.returncode == 0, done.stderr
    assert f"{RISK}: challenger v- -> v2 (try the tree)" in done.stdout
    workspace = Workspace.open(versioned)
    client = mlflow_client(workspace)
    assert int(client.get_model_version_by_alias(RISK, CHALLENGER).version) == 2
    assert int(current_champion(client, RISK).version) == 1  # the champion does not move
    event = read_history(workspace, RISK)[-1]
    assert (event["action"], event["version"], event["reason"]) == ("challenger", 2, "try the tree")
    for args, message in (((RISK, "9"), "has no version 9"), ((RISK, "1"), "is the champion"), ((RISK,), "VERSION")):
        refused = cli(*args)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    cleared = cli(RISK, "--clear")
    assert cleared.returncode == 0 and "challenger v2 removed" in cleared.stdout
    assert read_history(workspace, RISK)[-1]["action"] == "challenger_cleared"
    with pytest.raises(RegistryError, match="has no challenger"):
        from mlops.registry import clear_challenger

        clear_challenger(workspace, RISK, "again")


def test_the_challenger_is_scored_in_shadow_logged_beside_the_champion_never_returned(
    versioned: Path, monkeypatch: pytest.MonkeyPatch, instances: list[dict[str, Any]]
) -> None:
    workspace = Workspace.open(versioned)
    set_challenger(workspace, RISK, 2, "shadow test")
    with app_client(versioned, monkeypatch, shadow_share="1", reload_interval_s="0") as client:
        shadow: ShadowScoring = client.app.state.shadow
        deadline = time.monotonic() + 60
        while RISK not in shadow.challengers:  # loaded by the first poll, off the request path
            assert time.monotonic() < deadline, "the challenger never loaded"
            time.sleep(0.05)
        assert shadow.challengers[RISK].version == 2 and OTHER not in shadow.challengers
        answers = [
            client.post(f"/v1/models/{RISK}/predict", json={"instances": instances}, headers=auth()).json()
            for _ in range(3)
        ]
        client.post(f"/v1/models/{OTHER}/predict", json={"instances": instances}, headers=auth())
        client.post(f"/v1/models/{RISK}/versions/1/predict", json={"instances": instances}, headers=auth())
    for answer in answers:  # what the client got: the champion's, nothing of the challenger
        assert answer["version"] == 1 and {p["version"] for p in answer["predictions"]} == {1}
        assert set(answer) == {"model", "version", "predictions"}
    rows = DeltaTable(shadow_uri(workspace, RISK)).to_pyarrow_table().to_pylist()
    answered = {p["prediction_id"]: p for a in answers for p in a["predictions"]}
    assert len(rows) == 3 * len(instances) and {r["prediction_id"] for r in rows} == set(answered)
    for row in rows:
        champion = answered[row["prediction_id"]]
        assert (row["champion_version"], row["challenger_version"]) == (1, 2)
        assert row["champion_score"] == champion["score"] and row["challenger_score"] is not None
    assert any(r["challenger_score"] != r["champion_score"] for r in rows)  # another model, other answers
    assert not Path(shadow_uri(workspace, OTHER)).exists()  # no challenger, no shadow


def test_shadow_takes_its_share_and_drops_beyond_its_queue(versioned: Path) -> None:
    draws = iter([0.2, 0.7, 0.1, 0.3])
    shadow = ShadowScoring(Workspace.open(versioned), 0.5, 1, 5.0, 100, draw=lambda: next(draws))
    champion = type("Champion", (), {"name": RISK, "alias": "champion", "version": 1})()
    shadow.challengers[RISK] = champion  # type: ignore[assignment]
    taken = [shadow.offer(champion, [{}], [{"prediction_id": "x"}], "r") for _ in range(4)]  # type: ignore[arg-type]
    assert taken == [True, False, False, False]  # 0.2 taken, 0.7 not drawn, 0.1 and 0.3 drawn: the queue (1) is full
    assert (shadow.offered, shadow.dropped) == (1, 2)
    pinned = type("Pinned", (), {"name": RISK, "alias": "version", "version": 2})()
    assert not shadow.offer(pinned, [{}], [{}], "r")  # type: ignore[arg-type]  # only the champion's requests


def test_the_dashboard_compares_champion_and_challenger(
    versioned: Path, monkeypatch: pytest.MonkeyPatch, instances: list[dict[str, Any]]
) -> None:
    workspace = Workspace.open(versioned)
    set_challenger(workspace, RISK, 2, "dashboard test")
    with app_client(versioned, monkeypatch, shadow_share="1", reload_interval_s="0", open="true") as client:
        shadow = client.app.state.shadow
        deadline = time.monotonic() + 60
        while RISK not in shadow.challengers:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for _ in range(2):
            client.post(f"/v1/models/{RISK}/predict", json={"instances": instances})
        shadow_stop_flushes = client.portal.call(shadow.stop)  # type: ignore[union-attr]
        assert shadow_stop_flushes is None
        page = client.get("/dashboards/fleet").text
    assert f'id="challenger-{RISK}"' in page
    assert "<td>v1</td><td>v2</td>" in page and f'<td class="num">{len(instances) * 2}</td>' in page


def test_the_gate_makes_a_close_winner_the_challenger_when_the_spec_asks(tmp_path: Path) -> None:
    from mlops.pipeline import run_training
    from mlops.registry import becomes_challenger, decide, list_models
    from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features

    gate = GateSpec(min_improvement_over_baseline=0.05, min_improvement_over_champion=0.1, challenger=True)
    close = decide("f1", 0.60, 0.40, 0.55, 1, gate)  # beats 'as is', not the champion by 0.1
    assert not close.passed and becomes_challenger(close, gate)
    assert not becomes_challenger(close, GateSpec(min_improvement_over_champion=0.1))  # off by default
    assert not becomes_challenger(decide("f1", 0.42, 0.40, 0.55, 1, gate), gate)  # not even 'as is' by 0.05
    assert not becomes_challenger(decide("f1", 0.60, 0.40, None, None, gate), gate)  # no champion: it passes

    kit = MlWorkspace(tmp_path / "ws")
    kit.publish(synthetic_features(trucks=6, days=40))
    candidates = [{"name": "logistic_regression", "estimator": "logistic_regression", "params": {}}]
    kit.write_spec(spec_dict(candidates=candidates, baseline={"rule": "temp > 200"}))
    assert run_training(kit.workspace, kit.ref())["gate"]["passed"]
    tree = [{"name": "decision_tree", "estimator": "decision_tree", "params": {"max_depth": 3}}]
    gate_spec = {"min_improvement_over_champion": 1.0, "challenger": True}  # nothing beats a champion by 1.0
    kit.write_spec(spec_dict(candidates=tree, baseline={"rule": "temp > 200"}, gate=gate_spec))
    report = run_training(kit.workspace, kit.ref())
    assert not report["gate"]["passed"] and report["registered_version"] == 2
    client = mlflow_client(kit.workspace)
    assert int(client.get_model_version_by_alias(RISK, CHALLENGER).version) == 2
    assert int(current_champion(client, RISK).version) == 1
    assert read_history(kit.workspace, RISK)[-1]["action"] == "gate_challenger"
    listed = next(m for m in list_models(kit.workspace) if m["model"] == RISK)
    assert (listed["champion"], listed["versions"], listed["latest"]) == (1, 2, 2)


def test_the_dashboard_compares_them_against_the_outcomes_once_they_arrive(
    versioned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.mlops.conftest import MlWorkspace

    workspace = Workspace.open(versioned)
    set_challenger(workspace, RISK, 2, "outcomes test")
    gold = f"{workspace.lakehouse_root}/gold/fleet/features_day"
    trucks = ["T001", "T002", "T003", "T004"]
    with app_client(versioned, monkeypatch, shadow_share="1", reload_interval_s="0", open="true") as client:
        shadow = client.app.state.shadow
        deadline = time.monotonic() + 60
        while RISK not in shadow.challengers:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answer = client.post(f"/v1/models/{RISK}/predict-by-key", json={"keys": [{"truck_id": t} for t in trucks]})
        assert answer.status_code == 200 and all(p["found"] for p in answer.json()["predictions"])
        client.portal.call(shadow.stop)
        before = client.get("/dashboards/fleet").text
        assert f'id="challenger-{RISK}"' in before
        assert f'id="challenger-outcomes-{RISK}"' not in before  # the latest days' outcomes are not known yet
        frame = DeltaTable(gold).to_pandas()
        latest = frame[frame["truck_id"].isin(trucks)].sort_values("date_day").groupby("truck_id").tail(1)
        frame["label_complete"] = True  # the outcomes arrive
        MlWorkspace(versioned).publish(frame)
        after = client.get("/dashboards/fleet").text
    assert f'id="challenger-outcomes-{RISK}"' in after
    positives = int(latest["failure_soon"].sum())
    assert f'<td>v1</td><td>v2</td><td class="num">{len(trucks)}</td><td class="num">{positives}</td>' in after
