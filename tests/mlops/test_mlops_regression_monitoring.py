"""Monitoring a `task: regression` champion: realised error (MAE, RMSE, bias) per week of the scored rows whose
outcome has arrived, against the champion's validation figures from its MLflow run and the spec's ceilings; the
realised-error rows in the lakehouse, the `<model>_realised_mae|rmse` KPIs in the catalogue, the dashboard's
section. Real MLflow sqlite store, Delta tables and DuckDB; no dbt (the feature table is published directly)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

from foundation.specs.model import ModelSpec
from mlops.monitoring import error_verdict
from tests.mlops.conftest import MlWorkspace
from tests.mlops.test_mlops_regression import TABLE, regression_spec, weekly_volumes


def test_the_error_verdict_pools_the_latest_weeks_against_the_ceilings() -> None:
    weekly = pd.DataFrame(
        {
            "week": ["2026-01-05", "2026-01-12", "2026-01-19"],
            "predictions": [2, 2, 4],
            "abs_error": [100.0, 4.0, 12.0],  # the old week is left out: weeks = 2
            "sq_error": [5000.0, 8.0, 36.0],
            "error": [100.0, -4.0, 12.0],
        }
    )
    spec = ModelSpec.model_validate(regression_spec(monitoring={"performance": {"weeks": 2, "max_mae": 2.5}}))
    verdict = error_verdict(weekly, spec)
    assert verdict["weeks"] == 2 and verdict["predictions"] == 6
    assert verdict["mae"] == pytest.approx(16 / 6) and verdict["rmse"] == pytest.approx(np.sqrt(44 / 6))
    assert verdict["bias"] == pytest.approx(8 / 6)
    assert not verdict["passed"] and verdict["problems"] == ["realised MAE 2.67 > 2.5"]
    looser = ModelSpec.model_validate(
        regression_spec(monitoring={"performance": {"weeks": 2, "max_mae": 3, "max_abs_bias": 1}})
    )
    assert error_verdict(weekly, looser)["problems"] == ["realised bias 1.33 beyond ±1"]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return monitor_a_regression(tmp_path_factory)


def monitor_a_regression(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A regression champion trained on 80 weeks, then 20 more weeks scored whose outcomes arrived: a pass on
    the truth, then a pass after reality moved 60 claims above every forecast made."""
    from mlops.inference import batch_score
    from mlops.monitoring import run_monitoring
    from mlops.pipeline import run_training

    kit = MlWorkspace(tmp_path_factory.mktemp("regmon") / "ws")
    frame = weekly_volumes(weeks=100)
    kit.publish(frame[frame["week"] < frame["week"].iloc[80]], TABLE)
    ceiling = {"performance": {"weeks": 4, "max_mae": 30, "max_rmse": 40}}
    kit.write_spec(regression_spec(monitoring=ceiling), "volume")
    ref = kit.ref("volume")
    report = run_training(kit.workspace, ref)
    assert report["registered_version"] == 1
    kit.publish(frame, TABLE)
    batch_score(kit.workspace, ref)
    green = run_monitoring(kit.workspace, ref)
    shifted = frame.assign(volume=frame["volume"] + np.where(frame["week"] >= frame["week"].iloc[80], 60.0, 0.0))
    kit.publish(shifted, TABLE)  # the outcomes that arrived: 60 more claims each week than forecast
    red = run_monitoring(kit.workspace, ref)
    return {"kit": kit, "ref": ref, "report": report, "green": green, "red": red}


def test_a_regression_champion_is_monitored_against_its_validation_errors(monitored: dict[str, Any]) -> None:
    from mlops.monitoring import monitoring_uri

    kit, ref, green = monitored["kit"], monitored["ref"], monitored["green"]
    validation = green["validation"]
    winner = monitored["report"]["comparison"][monitored["report"]["winner"]]
    assert validation["mae"] == pytest.approx(winner["mae"]) and validation["rmse"] == pytest.approx(winner["rmse"])
    verdict = green["performance"]
    assert verdict["passed"], verdict["problems"]
    assert verdict["weeks"] == 4 and 0 < verdict["mae"] < 30 and verdict["mae"] <= verdict["rmse"]
    assert len(green["weekly"]) >= 20  # every week after the training's end whose outcome arrived
    rows = DeltaTable(monitoring_uri(kit.workspace, ref, "realised_error")).to_pandas()
    assert len(rows) == len(green["weekly"]) and {"mae", "rmse", "bias", "predictions"} <= set(rows.columns)
    assert (rows["rmse"] >= rows["mae"]).all() and rows["predictions"].sum() >= 3 * 20


def test_the_check_goes_red_when_reality_moves_beyond_the_ceiling(monitored: dict[str, Any]) -> None:
    from foundation.dagster_defs.ml_assets import monitoring_check_results

    red = monitored["red"]["performance"]
    assert not red["passed"] and red["mae"] > 30 and red["bias"] == pytest.approx(-60, abs=15)  # forecasts short
    assert any(p.startswith("realised MAE") and p.endswith("> 30.0") for p in red["problems"])
    check = next(c for c in monitoring_check_results(monitored["red"]) if c.check_name == "realised_performance")
    assert not check.passed and "realised MAE" in check.metadata["problems"].value
    assert check.metadata["mae"].value == pytest.approx(red["mae"]) and "precision" not in check.metadata
    assert check.metadata["validation_mae"].value == pytest.approx(monitored["red"]["validation"]["mae"])


def test_the_realised_error_is_published_as_kpis_and_drawn_on_the_dashboard(monitored: dict[str, Any]) -> None:
    from foundation.engine.dbt.publish import gold_uri
    from mlops.kpis import catalog_entries
    from serving.api.routes.dashboards import monitoring_view

    kit, ref, red = monitored["kit"], monitored["ref"], monitored["red"]
    assert set(red["kpis"]) == {"volume_realised_mae", "volume_realised_rmse"}
    entries = {e["id"]: e for e in catalog_entries(kit.workspace)}
    mae = entries["volume_realised_mae"]
    assert mae["direction"] == "lower" and mae["alert"] == 30 and mae["kind"] == "monitoring"
    assert "volume_realised_precision" not in entries
    kpi = DeltaTable(gold_uri(kit.workspace, ref.usecase, "kpi_volume_realised_mae")).to_pandas()
    total = kpi[kpi["figure"].isna()].sort_values("period")
    assert total["value"].iloc[-1] == pytest.approx(red["weekly"][-1]["mae"], abs=0.01)  # in claims, not %
    assert set(kpi["figure"].dropna()) == {"realised", "validation"}
    view = monitoring_view(kit.workspace, ref)
    assert view is not None and set(view["charts"]) == {"mae", "rmse"}
