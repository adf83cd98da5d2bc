"""Registry, gate and batch inference on a real MLflow sqlite store and a real Delta lakehouse: the gate rejects a
worse model and keeps the champion; rollback restores the previous version; batch predictions cover every feature
row once; monitoring computes drift and realised performance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import duckdb
import pytest

from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.specs.model import GateSpec
from mlops.inference import at_risk, batch_score, predictions_uri
from mlops.monitoring import psi, run_monitoring
from mlops.pipeline import run_training
from mlops.registry import (
    CHAMPION,
    RegistryError,
    champion_lineage,
    decide,
    list_models,
    mlflow_client,
    promote,
    read_history,
    rollback,
    show_model,
)
from tests.mlops.conftest import spec_dict


def _champion(kit: Any) -> int:
    client = mlflow_client(kit.workspace)
    return int(client.get_model_version_by_alias("fleet__risk", CHAMPION).version)


def test_gate_decision_is_pure_and_explains_itself() -> None:
    gate = GateSpec(min_improvement_over_baseline=0.05, min_improvement_over_champion=0.01)
    ok = decide("f1", 0.60, 0.40, 0.55, 3, gate)
    assert ok.passed and "beats champion v3" in ok.reasons[1]
    worse = decide("f1", 0.50, 0.40, 0.55, 3, gate)
    assert not worse.passed and "the champion stays" in worse.reasons[1]
    barely = decide("f1", 0.43, 0.40, None, None, gate)
    assert not barely.passed and "does not beat 'as is' by 0.050" in barely.reasons[0]
    assert decide("f1", 0.46, 0.40, None, None, gate).passed


def test_first_training_makes_a_champion_and_records_it(trained: dict[str, Any]) -> None:
    kit, report = trained["kit"], trained["report"]
    assert report["gate"]["passed"], report["gate"]
    assert report["champion"] == report["registered_version"] == _champion(kit)
    assert next(iter(report["comparison"])) == "As is" and len(report["comparison"]) == 5
    (event,) = [e for e in read_history(kit.workspace, "fleet__risk") if e["version"] == report["registered_version"]]
    assert event["action"] == "promote" and event["actor"].startswith("gate")
    assert event["score"] == pytest.approx(report["gate"]["candidate_score"])
    artifacts = {a.path for a in mlflow_client(kit.workspace).list_artifacts(report["run_id"])}
    assert {"comparison.md", "comparison.png", "confusion_matrices.png"} <= artifacts


def test_gate_rejects_a_worse_model_and_keeps_the_champion(trained: dict[str, Any]) -> None:
    kit = trained["kit"]
    champion_before = _champion(kit)
    versions_before = [v["version"] for v in show_model(kit.workspace, "fleet__risk")["versions"]]
    # A crippled candidate list: one stump; it cannot beat the champion re-scored on the same validation rows.
    kit.write_spec(spec_dict(candidates=[{"name": "stump", "estimator": "decision_tree", "params": {"max_depth": 1}}]))
    report = run_training(kit.workspace, kit.ref())
    kit.write_spec(spec_dict())
    assert not report["gate"]["passed"]
    assert any("the champion stays" in r or "does not beat" in r for r in report["gate"]["reasons"])
    assert report["gate"]["champion_basis"] == "re-scored on this validation set"
    assert _champion(kit) == champion_before
    # a rejected winner is no registry version: it stays a logged model in its run
    assert report["registered_version"] is None and report["logged_model"].startswith("models:/")
    assert [v["version"] for v in show_model(kit.workspace, "fleet__risk")["versions"]] == versions_before
    (rejected,) = [e for e in read_history(kit.workspace, "fleet__risk") if e["run_id"] == report["run_id"]]
    assert rejected["action"] == "reject" and rejected["version"] is None
    assert rejected["previous_version"] == champion_before


def test_rollback_restores_the_previous_version(trained: dict[str, Any]) -> None:
    kit = trained["kit"]
    before = _champion(kit)
    # a second champion: the gate lets a winner through that ties the champion (a negative margin)
    kit.write_spec(spec_dict(gate={"min_improvement_over_champion": -1.0}))
    newest = run_training(kit.workspace, kit.ref())["registered_version"]
    kit.write_spec(spec_dict())
    assert newest != before and _champion(kit) == newest
    rollback(kit.workspace, "fleet__risk", "first look", who="bob")
    assert _champion(kit) == before
    promote(kit.workspace, "fleet__risk", newest, "trial in production", who="alice")
    assert _champion(kit) == newest
    event = rollback(kit.workspace, "fleet__risk", "alerts doubled", who="bob")
    assert (event.version, event.previous_version) == (before, newest)
    assert _champion(kit) == before
    history = read_history(kit.workspace, "fleet__risk")
    assert [e["actor"] for e in history[-2:]] == ["alice", "bob"]
    assert champion_lineage(history)[-1] == before
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(kit.workspace, "fleet__risk", "again")
    assert _champion(kit) == before
    assert list_models(kit.workspace) == _models_in_mlflow(kit)
    assert list_models(kit.workspace)[0]["estimator"] in {c["name"] for c in spec_dict()["candidates"]}


def _models_in_mlflow(kit: Any) -> list[dict[str, Any]]:
    """What MLflow's registry says, to hold `list_models` (replayed from the promotion history) to it."""
    client = mlflow_client(kit.workspace)
    items = []
    for model in client.search_registered_models(order_by=["name ASC"]):
        versions = [int(v.version) for v in client.search_model_versions(f"name = '{model.name}'")]
        champion = client.get_model_version_by_alias(model.name, CHAMPION)
        tags = champion.tags
        items.append(
            {
                "model": model.name,
                "champion": int(champion.version),
                "versions": len(versions),
                "latest": max(versions),
                "metric": tags["foundation.metric"],
                "score": float(tags["foundation.score"]),
                "estimator": tags["foundation.candidate"],
            }
        )
    return items


def test_models_list_reads_the_history_without_importing_mlflow(trained: dict[str, Any]) -> None:
    probe = "import json, sys; from foundation.cli.main import app\ntry: app()\nexcept SystemExit: pass\n"
    probe += "sys.stderr.write('MODULES ' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    env = {**os.environ, "FOUNDATION_WORKSPACE": str(trained["kit"].root)}
    result = subprocess.run(
        [sys.executable, "-c", probe, "models", "list", "--json"], env=env, capture_output=True, text=True
    )
    modules = set(json.loads(result.stderr.rpartition("MODULES ")[2]))
    assert not modules & {"mlflow", "sklearn", "pandas"}, sorted(modules & {"mlflow", "sklearn", "pandas"})
    assert "fleet__risk" in result.stdout


def test_champion_lineage_replays_promotions_and_rollbacks() -> None:
    events = [
        {"action": a, "version": v}
        for a, v in [
            ("promote", 1),
            ("reject", 2),
            ("promote", 3),
            ("manual_promote", 4),
            ("rollback", 3),
            ("rollback", 1),
        ]
    ]
    assert champion_lineage(events) == [1]
    assert champion_lineage(events[:4]) == [1, 3, 4]


def test_batch_predictions_cover_every_feature_row_once(trained: dict[str, Any]) -> None:
    kit = trained["kit"]
    ref = kit.ref()
    first = batch_score(kit.workspace, ref)
    again = batch_score(kit.workspace, ref)
    con = duckdb.connect()
    predictions = delta_relation_sql(con, predictions_uri(kit.workspace, ref))
    features = delta_relation_sql(con, f"{kit.workspace.lakehouse_root}/gold/fleet/features_day", empty_name="_f")
    n_features = con.execute(f"select count(*) from {features}").fetchall()[0][0]
    rows, ids, keys, missing = con.execute(
        f"""select count(*), count(distinct prediction_id), count(distinct (truck_id, date_day)),
                  (select count(*) from {features} f where not exists (
                      select 1 from {predictions} p where p.truck_id = f.truck_id and p.date_day = f.date_day))
           from {predictions}"""
    ).fetchall()[0]
    columns = [d[0] for d in con.execute(f"select * from {predictions} limit 0").description]
    con.close()
    assert first.rows_scored == n_features == rows == ids == keys and missing == 0
    assert again.rows_scored == 0 and again.rows_already_scored == n_features
    assert {"prediction_id", "model", "model_version", "scored_at", "score", "label"} <= set(columns)
    assert first.version == _champion(kit)
    assert at_risk(kit.workspace, ref) and all(r["value"] >= 0 for r in at_risk(kit.workspace, ref))


def test_monitoring_drift_and_realised_performance(trained: dict[str, Any]) -> None:
    kit = trained["kit"]
    ref = kit.ref()
    batch_score(kit.workspace, ref)
    result = run_monitoring(kit.workspace, ref)
    assert {d["feature"] for d in result["drift"]} >= {"temp", "vibration", "truck_type"}
    assert result["weekly"] and all(w["predictions"] > 0 for w in result["weekly"])
    verdict = result["performance"]
    assert verdict["tp"] + verdict["fn"] > 0 and verdict["passed"] is (not verdict["problems"])


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    reference = pd.Series(rng.normal(0, 1, 5000))
    assert psi(reference, pd.Series(rng.normal(0, 1, 5000))) < 0.02
    assert psi(reference, pd.Series(rng.normal(1, 1, 5000))) > 0.25
    assert psi(pd.Series(["a"] * 50 + ["b"] * 50), pd.Series(["a"] * 90 + ["c"] * 10)) > 0.25


def test_a_promotion_by_hand_is_a_new_registered_materialisation_that_automation_follows(
    trained: dict[str, Any],
) -> None:
    import dagster as dg
    from typer.testing import CliRunner

    from foundation.cli.main import app
    from foundation.dagster_defs.instance import dagster_instance

    kit = trained["kit"]
    before = _champion(kit)
    other = next(v["version"] for v in show_model(kit.workspace, "fleet__risk")["versions"] if v["version"] != before)
    key = dg.AssetKey(["fleet", "ml", "risk", "registered"])
    runner = CliRunner()
    promoted = runner.invoke(
        app, ["--workspace", str(kit.workspace.root), "models", "promote", "fleet__risk", str(other), "--json"]
    )
    assert promoted.exit_code == 0, promoted.output
    event = dagster_instance(kit.workspace).get_latest_materialization_event(key)
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.metadata["version"].value == other
    rolled = runner.invoke(app, ["--workspace", str(kit.workspace.root), "models", "rollback", "fleet__risk"])
    assert rolled.exit_code == 0, rolled.output
    event = dagster_instance(kit.workspace).get_latest_materialization_event(key)
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.metadata["version"].value == before == _champion(kit)
