"""Explanations: per-prediction contributions are exact decompositions of each model family's own output (bias +
contributions = the log-odds or probability the model gives), the one-hot columns of a text feature count as one,
and permutation importance on validation rows finds the feature the label depends on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from foundation.specs.model import CandidateSpec
from mlops.explain import ExplainUnsupported, explain_rows, permutation_importances, top_contributions
from mlops.training import build_pipeline, model_inputs
from tests.mlops.conftest import synthetic_features

FEATURES = ["temp", "vibration", "hours", "truck_type"]
CANDIDATES = {
    "logistic_regression": {"max_iter": 500},
    "decision_tree": {"max_depth": 4},
    "random_forest": {"n_estimators": 15, "max_depth": 4},
    "gradient_boosting": {"max_iter": 15},
    "sklearn.ensemble.ExtraTreesClassifier": {"n_estimators": 10, "max_depth": 4},
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    frame = synthetic_features(trucks=10, days=40)
    inputs = model_inputs(frame, FEATURES)
    inputs.loc[3, "temp"] = np.nan  # a missing value takes the imputer's (and a boosted split's missing) path
    return inputs, frame["failure_soon"].to_numpy(dtype=bool)


def _fit(estimator: str, data: tuple[pd.DataFrame, np.ndarray]):
    inputs, actual = data
    candidate = CandidateSpec(name="c", estimator=estimator, params=CANDIDATES[estimator])
    return build_pipeline(candidate, inputs, seed=5).fit(inputs, actual)


@pytest.mark.parametrize("estimator", list(CANDIDATES))
def test_bias_plus_contributions_is_the_models_output(estimator: str, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    inputs, _ = data
    pipeline = _fit(estimator, data)
    rows = inputs.head(40)
    explanation = explain_rows(pipeline, rows)
    total = explanation.bias + explanation.contributions.sum(axis=1)
    probability = pipeline.predict_proba(rows)[:, 1]
    expected = probability if explanation.unit == "probability" else logit(probability)
    np.testing.assert_allclose(total, expected, rtol=1e-6, atol=1e-6)
    assert explanation.columns == FEATURES  # truck_type's one-hot columns folded into one
    assert np.abs(explanation.contributions).sum() > 0


def test_linear_contribution_is_coefficient_times_standardised_value(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    inputs, _ = data
    pipeline = _fit("logistic_regression", data)
    explanation = explain_rows(pipeline, inputs.head(3))
    scaled = pipeline[:-1].transform(inputs.head(3))
    temp = list(pipeline[:-1].get_feature_names_out()).index("temp")
    coef = pipeline[-1].coef_[0][temp]
    np.testing.assert_allclose(explanation.contributions[:, 0], coef * np.asarray(scaled)[:, temp])


def test_top_contributions_name_the_value_and_are_ordered(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    inputs, _ = data
    rows = inputs.iloc[[3, 7]]
    (missing, other) = top_contributions(explain_rows(_fit("random_forest", data), rows), rows, top=3)
    assert len(missing) == 3 and {c["feature"] for c in missing} <= set(FEATURES)
    sizes = [abs(c["contribution"]) for c in other]
    assert sizes == sorted(sizes, reverse=True)
    assert next((c["value"] for c in missing if c["feature"] == "temp"), None) is None  # NaN reads as null


def test_an_estimator_without_a_decomposition_is_refused(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    inputs, actual = data
    candidate = CandidateSpec(name="c", estimator="sklearn.neighbors.KNeighborsClassifier")
    pipeline = build_pipeline(candidate, inputs, seed=5).fit(inputs, actual)
    with pytest.raises(ExplainUnsupported, match="neither a linear model nor"):
        explain_rows(pipeline, inputs.head(2))


def test_permutation_importance_finds_the_signal(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    inputs, actual = data
    pipeline = _fit("logistic_regression", data)
    importances = permutation_importances(pipeline, inputs, actual, seed=3)
    assert importances[0]["feature"] == "temp" and importances[0]["mean"] > 0.05  # failures follow temp
    assert {r["feature"] for r in importances} == set(FEATURES)
    assert permutation_importances(pipeline, inputs, np.zeros(len(inputs), dtype=bool), seed=3) == []


@pytest.mark.parametrize(
    "estimator",
    [
        "sklearn.linear_model.Ridge",
        "sklearn.ensemble.RandomForestRegressor",
        "sklearn.ensemble.HistGradientBoostingRegressor",
    ],
)
def test_a_regressors_contributions_add_up_to_its_prediction(estimator: str, data: tuple) -> None:
    inputs, _ = data
    target = 2.0 * inputs["temp"].fillna(90) + 3.0 * inputs["vibration"]
    params = {"n_estimators": 10, "max_depth": 4} if "Forest" in estimator else {}
    candidate = CandidateSpec(name="c", estimator=estimator, params=params)
    pipeline = build_pipeline(candidate, inputs, seed=5).fit(inputs, target)
    explanation = explain_rows(pipeline, inputs.head(20))
    assert explanation.unit == "target"
    total = explanation.bias + explanation.contributions.sum(axis=1)
    np.testing.assert_allclose(total, pipeline.predict(inputs.head(20)), rtol=1e-6, atol=1e-6)
