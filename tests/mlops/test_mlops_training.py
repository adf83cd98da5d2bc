"""Training is reproducible with a seed; the 'as is' rule is evaluated on the same rows as the candidates; the
metrics behind the comparison table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from foundation.specs.model import ModelSpec, SelectionSpec
from mlops.metrics import choose_threshold, confusion, evaluate
from mlops.report import comparison_markdown, comparison_rows
from mlops.training import baseline_predictions, train_and_evaluate, training_problem
from tests.mlops.conftest import spec_dict, synthetic_features


@pytest.fixture(scope="module")
def training_frame() -> pd.DataFrame:
    frame = synthetic_features(trucks=10, days=50)
    return frame[frame.label_complete].reset_index(drop=True)


def test_training_is_reproducible_with_a_seed(training_frame: pd.DataFrame) -> None:
    spec = ModelSpec.model_validate(spec_dict())
    first, second = train_and_evaluate(training_frame, spec), train_and_evaluate(training_frame, spec)
    assert first.comparison() == second.comparison()
    for a, b in zip(first.candidates, second.candidates, strict=True):
        assert a.threshold == b.threshold
        np.testing.assert_array_equal(a.scores, b.scores)
    other = train_and_evaluate(training_frame, ModelSpec.model_validate(spec_dict(seed=8)))
    forest = next(c for c in other.candidates if c.name == "random_forest")
    assert not np.array_equal(forest.scores, first.candidates[0].scores), "the seed must reach the estimators"


def test_baseline_and_candidates_share_the_validation_rows(training_frame: pd.DataFrame) -> None:
    spec = ModelSpec.model_validate(spec_dict())
    result = train_and_evaluate(training_frame, spec)
    validation = training_frame[result.split.validation].reset_index(drop=True)
    expected = (validation.temp > 97).to_numpy()
    np.testing.assert_array_equal(result.baseline_predicted, expected)
    n = int(result.split.validation.sum())
    for evaluation in result.comparison().values():
        assert evaluation.tn + evaluation.fn + evaluation.tp + evaluation.fp == n
    assert next(iter(result.comparison())) == "As is"
    assert result.winner.evaluation.score == max(c.evaluation.score for c in result.candidates)


def test_baseline_rule_null_is_no_alert() -> None:
    frame = pd.DataFrame({"temp": [99.0, None, 50.0]})
    assert baseline_predictions(frame, "temp > 97").tolist() == [True, False, False]


def test_metrics_match_the_reference_table() -> None:
    # The "As is" column: TN 585, FN 7, TP 5, FP 26 -> precision 0.16, recall 0.42, F1 0.23
    actual = np.array([False] * 585 + [True] * 7 + [True] * 5 + [False] * 26)
    predicted = np.array([False] * 585 + [False] * 7 + [True] * 5 + [True] * 26)
    assert confusion(actual, predicted) == (585, 7, 5, 26)
    evaluation = evaluate(actual, predicted, SelectionSpec())
    assert round(evaluation.precision, 2) == 0.16 and round(evaluation.recall, 2) == 0.42
    assert round(evaluation.f1, 2) == 0.23
    nothing = evaluate(actual, np.zeros_like(actual), SelectionSpec())
    assert nothing.precision is None and nothing.f1 == 0.0  # shown as '-' like the reference's decision tree


def test_business_metrics() -> None:
    selection = SelectionSpec.model_validate(
        {"metric": "savings", "cost": {"false_negative": 100, "false_positive": 10, "true_positive": 20}}
    )
    actual = np.array([True, True, False, False])
    predicted = np.array([True, False, True, False])
    assert evaluate(actual, predicted, selection).savings == 1 * (100 - 20) - 1 * 10
    strict = SelectionSpec(metric="recall_at_precision", min_precision=0.9)
    assert evaluate(actual, predicted, strict).score == 0.0  # precision 0.5 < 0.9: not acceptable to the business
    assert evaluate(actual, predicted, SelectionSpec(metric="recall_at_precision", min_precision=0.5)).score == 0.5


def test_threshold_choice_maximises_the_metric() -> None:
    actual = np.array([False, False, True, True])
    scores = np.array([0.1, 0.3, 0.35, 0.9])
    assert choose_threshold(actual, scores, SelectionSpec()) == pytest.approx(0.35)


def test_comparison_table_rows() -> None:
    selection = SelectionSpec.model_validate({"metric": "f1", "cost": {"currency": "EUR", "false_negative": 100}})
    comparison = {
        "As is": {
            "tn": 1,
            "fn": 1,
            "tp": 1,
            "fp": 1,
            "precision": 0.5,
            "recall": 0.5,
            "f1": 0.5,
            "savings": 100.0,
            "score": 0.5,
        },
        "tree": {
            "tn": 2,
            "fn": 2,
            "tp": 0,
            "fp": 0,
            "precision": None,
            "recall": 0.0,
            "f1": 0.0,
            "savings": 0.0,
            "score": 0.0,
        },
    }
    rows = comparison_rows(comparison, selection)
    assert [r[0] for r in rows][:7] == [
        "True Negatives",
        "False Negatives",
        "True Positives",
        "False Positives",
        "Precision",
        "Recall",
        "F1-Score",
    ]
    assert rows[4] == ["Precision", "0.50", "-"]
    assert rows[7] == ["Savings (EUR)", "100", "0"]
    assert "|  | As is | tree |" in comparison_markdown(comparison, selection)


def test_training_problem_names_what_is_missing() -> None:
    spec = ModelSpec.model_validate(spec_dict())
    frame = synthetic_features(trucks=3, days=12)
    assert "no training rows left" in training_problem(frame[frame.label_complete], spec)
    one_class = synthetic_features(trucks=4, days=60).assign(failure_soon=False)
    assert "one class only" in training_problem(one_class, spec)
    assert training_problem(synthetic_features(trucks=6, days=60), spec) is None
