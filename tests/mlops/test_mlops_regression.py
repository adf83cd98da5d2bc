"""`task: regression`: an 'as is' expression against regressor candidates on MAE / RMSE / MAPE / cost, the gate the
right way round (lower error wins), a rolling-origin backtest, and the champion's values in MLflow, in batch and in
the API's model (a number, not a probability). Real MLflow sqlite store and Delta tables."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable
from pydantic import ValidationError

from foundation.specs.model import ModelSpec
from mlops.metrics import evaluate_errors
from mlops.registry import decide
from mlops.report import as_dicts, comparison_rows
from mlops.splits import evaluation_splits, split_leaks
from mlops.training import train_and_evaluate
from tests.mlops.conftest import MlWorkspace, spec_dict

TABLE = "features_week"


def weekly_volumes(centres: int = 3, weeks: int = 80, seed: int = 5) -> pd.DataFrame:
    """Claims per centre and week: a level per centre, a yearly wave and noise; lags and a 4-week average of the
    previous weeks as features (what the dbt macros compute in the shipped use case)."""
    rng = np.random.default_rng(seed)
    start = date(2024, 1, 1)
    frames = []
    for centre in range(centres):
        t = np.arange(weeks)
        volume = 200 + 80 * centre + 40 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 8, weeks)
        frame = pd.DataFrame(
            {"centre_id": f"C{centre}", "week": [start + timedelta(weeks=int(w)) for w in t], "volume": volume}
        )
        frame["volume_lag_1"] = frame["volume"].shift(1)
        frame["volume_lag_52"] = frame["volume"].shift(52)
        frame["volume_avg_4"] = frame["volume"].shift(1).rolling(4).mean()
        frame["week_of_year"] = [float(w % 52) for w in t]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["history_complete"] = frame["volume_avg_4"].notna()
    return frame


def regression_spec(**overrides: Any) -> dict[str, Any]:
    return spec_dict(
        **{
            "name": "volume",
            "description": "Claims a centre receives next week.",
            "task": "regression",
            "feature_table": TABLE,
            "entity": ["centre_id"],
            "time": "week",
            "target": "volume",
            "row_filter": "history_complete",
            "features": {"include": ["volume_lag_1", "volume_avg_4", "week_of_year"]},
            "split": {"validation_fraction": 0.25},
            "baseline": {"name": "Last week", "expression": "volume_lag_1"},
            "candidates": [
                {"name": "random_forest", "estimator": "random_forest", "params": {"n_estimators": 20}},
                {"name": "linear_regression", "estimator": "linear_regression"},
                {"name": "decision_tree", "estimator": "decision_tree", "params": {"max_depth": 4}},
                {"name": "gradient_boosting", "estimator": "gradient_boosting", "params": {"max_iter": 30}},
            ],
            "selection": {"metric": "mae", "error_cost": {"currency": "EUR", "per_unit": 30, "per_unit_over": 10}},
            "monitoring": {},
            **overrides,
        }
    )


def training_rows() -> pd.DataFrame:
    frame = weekly_volumes()
    return frame[frame["history_complete"]].reset_index(drop=True)


def test_a_regression_spec_takes_regressors_errors_and_an_expression() -> None:
    spec = ModelSpec.model_validate(regression_spec(selection={}))
    assert spec.is_regression and spec.selection.metric == "mae" and spec.selection.lower_is_better
    assert [c.class_path.rsplit(".", 1)[1] for c in spec.candidates] == [
        "RandomForestRegressor",
        "Ridge",
        "DecisionTreeRegressor",
        "HistGradientBoostingRegressor",
    ]
    with pytest.raises(ValidationError, match=r"needs baseline\.expression"):
        ModelSpec.model_validate(regression_spec(baseline={"rule": "volume_lag_1 > 3"}))
    with pytest.raises(ValidationError, match="does not fit task regression"):
        ModelSpec.model_validate(regression_spec(selection={"metric": "f1"}))
    with pytest.raises(ValidationError, match="use linear_regression"):
        ModelSpec.model_validate(regression_spec(candidates=[{"name": "l", "estimator": "logistic_regression"}]))
    with pytest.raises(ValidationError, match="needs `error_cost:`"):
        ModelSpec.model_validate(regression_spec(selection={"metric": "cost"}))
    classification = ModelSpec.model_validate(spec_dict())  # unchanged: the default task
    assert classification.candidates[0].class_path == "sklearn.ensemble.RandomForestClassifier"


def test_errors_and_their_cost() -> None:
    spec = ModelSpec.model_validate(regression_spec())
    actual = np.array([100.0, 0.0, 50.0, 10.0])
    predicted = np.array([110.0, 5.0, 40.0, 10.0])  # over 10, over 5, under 10, exact
    e = evaluate_errors(actual, predicted, spec.selection)
    assert e.mae == pytest.approx(25 / 4) and e.rmse == pytest.approx(np.sqrt(225 / 4))
    assert e.mape == pytest.approx((0.1 + 0.2 + 0.0) / 3)  # the actual 0 is left out
    assert e.bias == pytest.approx(5 / 4)
    assert e.cost == pytest.approx(10 * 30 + 15 * 10)  # under at 30 per unit, over at 10
    assert e.score == e.mae


def test_the_gate_reads_a_lower_error_as_better() -> None:
    gate = ModelSpec.model_validate(regression_spec(gate={"min_improvement_over_baseline": 2})).gate
    assert decide("mae", 10.0, 13.0, None, None, gate, lower_is_better=True).passed
    assert not decide("mae", 12.0, 13.0, None, None, gate, lower_is_better=True).passed  # not 2 better
    assert not decide("mae", 14.0, 13.0, None, None, gate, lower_is_better=True).passed
    stays = decide("mae", 9.0, 13.0, 8.5, 2, gate, lower_is_better=True)
    assert not stays.passed and "the champion stays" in stays.reasons[-1]


def test_a_rolling_origin_backtest_validates_consecutive_windows_each_after_its_training() -> None:
    frame = training_rows()
    spec = ModelSpec.model_validate(regression_spec(split={"by": "time", "folds": 4, "validation_fraction": 0.3}))
    splits = evaluation_splits(frame, spec)
    assert len(splits) == 4
    for earlier, later in itertools.pairwise(splits):
        assert frame["week"][earlier.validation].max() < frame["week"][later.validation].min()  # consecutive
        assert later.train.sum() > earlier.train.sum()  # the origin rolls forward: more history each time
    for split in splits:
        assert frame["week"][split.train].max() < frame["week"][split.validation].min()
        assert split_leaks(frame, spec, split) == []
    result = train_and_evaluate(frame, spec)
    validated = np.logical_or.reduce([s.validation for s in splits])
    assert result.split.validation.sum() == validated.sum() < len(frame)  # the oldest weeks only ever train
    assert "rolling-origin backtest, 4 windows" in result.split.title()
    rows = {row[0]: row[1:] for row in comparison_rows(as_dicts(result.comparison()), spec.selection)}
    assert all(" ± " in cell for cell in rows["MAE, per fold: mean ± spread"])


def test_regression_trains_registers_and_scores_values_end_to_end(
    ml_workspace: MlWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow.pyfunc

    from mlops.inference import batch_score, load_champion, predictions_uri
    from mlops.pipeline import run_training
    from serving.loaded_models import load_champion as serve_champion

    ml_workspace.publish(weekly_volumes(), TABLE)
    ml_workspace.write_spec(regression_spec(), "volume")
    ref = ml_workspace.ref("volume")
    report = run_training(ml_workspace.workspace, ref)
    comparison = report["comparison"]
    assert report["task"] == "regression" and report["metric"] == "mae" and report["currency"] == "EUR"
    assert set(comparison) == {"Last week", "random_forest", "linear_regression", "decision_tree", "gradient_boosting"}
    best = min(comparison, key=lambda name: comparison[name]["mae"])
    assert report["winner"] == best != "Last week"  # the lowest error wins, and beats last week's value
    assert report["registered_version"] == 1 and report["champion"] == 1
    from foundation.cli.ml_command import print_training_report

    print_training_report(report)  # what `foundation train` / `run` print, rebuilt from the report
    printed = capsys.readouterr().out
    assert "MAE" in printed and "MAPE" in printed and "Cost of the errors (EUR)" in printed
    assert "True Negatives" not in printed and "winner: " in printed

    model, _version, threshold, features = load_champion(ml_workspace.workspace, ref)
    assert threshold is None and features == ["volume_lag_1", "volume_avg_4", "week_of_year"]
    scored = batch_score(ml_workspace.workspace, ref)
    frame = weekly_volumes()
    assert scored.rows_scored == len(frame) and scored.rows_flagged == 0
    predictions = DeltaTable(predictions_uri(ml_workspace.workspace, ref)).to_pandas()
    rows = frame.merge(predictions, on=["centre_id", "week"])
    from mlops.training import model_inputs

    expected = model.predict(model_inputs(rows, features))
    assert np.allclose(rows["score"], expected)  # the predicted volume itself, not a probability
    assert rows["label"].isna().all() and rows["threshold"].isna().all()

    pyfunc = mlflow.pyfunc.load_model(f"models:/{ref.registered_name}@champion")
    example = model_inputs(frame.tail(3), features)
    assert np.allclose(np.asarray(pyfunc.predict(example), dtype=float), model.predict(example))
    from mlops.registry import mlflow_client

    served = serve_champion(ml_workspace.workspace, mlflow_client(ml_workspace.workspace), ref.registered_name, 10)
    assert served is not None
    _, answers = served.predict(example.to_dict("records"))
    assert [a["prediction"] for a in answers] == pytest.approx(list(model.predict(example)))
    assert all(a["score"] is None for a in answers)
