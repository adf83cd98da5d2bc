"""`split: {by: group | random, folds: K}`: no unit is ever in both training and validation, K-fold validates every
row once, the leak check catches a unit on both sides, and a counter can be both the time column and a feature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from foundation.specs.model import ModelSpec
from mlops.metrics import evaluate, with_folds
from mlops.pipeline import mlflow_metrics
from mlops.report import as_dicts, comparison_rows
from mlops.splits import evaluation_splits, holdout_split, shared_units, split_leaks
from mlops.training import train_and_evaluate, training_problem
from tests.mlops.conftest import spec_dict, synthetic_features


def machines(units: int = 16, days: int = 30) -> pd.DataFrame:
    """Independent machines; `days_in_service` is the time column and also a feature (wear grows with it)."""
    frame = synthetic_features(trucks=units, days=days)
    frame["days_in_service"] = frame.groupby("truck_id").cumcount() + 1
    return frame


def group_spec(**split: object) -> ModelSpec:
    return ModelSpec.model_validate(
        spec_dict(
            time="days_in_service",
            split={"by": "group", **split},
            features={"include": ["temp", "vibration", "hours", "days_in_service"]},
            row_filter=None,
        )
    )


def test_a_group_holdout_puts_each_unit_on_one_side_only() -> None:
    frame, spec = machines(), group_spec(validation_fraction=0.25)
    split = holdout_split(frame, spec, spec.split.validation_fraction)
    train_units = set(frame["truck_id"][split.train])
    validation_units = set(frame["truck_id"][split.validation])
    assert train_units.isdisjoint(validation_units)
    assert train_units | validation_units == set(frame["truck_id"])  # nothing dropped
    assert (split.train_groups, split.validation_groups) == (12, 4)  # a quarter of the 16 units
    assert split_leaks(frame, spec, split) == []
    assert split.describe()["by"] == "group"


def test_group_k_fold_validates_every_row_once_and_never_shares_a_unit() -> None:
    frame, spec = machines(), group_spec(folds=4)
    splits = evaluation_splits(frame, spec)
    assert len(splits) == 4
    validated = np.sum([s.validation for s in splits], axis=0)
    assert (validated == 1).all()
    for split in splits:
        assert split_leaks(frame, spec, split) == []
        assert not (split.train & split.validation).any()
        assert frame["failure_soon"][split.validation].any()  # stratified: each fold has positives to find


def test_the_leak_check_catches_a_unit_on_both_sides() -> None:
    frame = machines()
    by_row = np.random.default_rng(0).random(len(frame)) < 0.25  # rows at random: every machine on both sides
    problems = shared_units(frame["truck_id"], ~by_row, by_row)
    assert problems and "16 unit(s) are both in training and validation" in problems[0]


def test_a_random_split_is_seeded_and_stratified() -> None:
    frame = machines()
    spec = ModelSpec.model_validate(spec_dict(split={"by": "random", "validation_fraction": 0.2}, row_filter=None))
    first, again = holdout_split(frame, spec, 0.2), holdout_split(frame, spec, 0.2)
    assert (first.validation == again.validation).all()
    share = frame["failure_soon"][first.validation].mean() / frame["failure_soon"].mean()
    assert 0.8 < share < 1.2  # the positive rate of validation follows the whole table's
    assert 0.15 < first.validation.mean() < 0.25


def test_k_fold_training_compares_out_of_fold_and_refits_on_all_rows() -> None:
    frame, spec = machines(units=12, days=20), group_spec(folds=3)
    result = train_and_evaluate(frame, spec)
    assert result.split.folds == 3 and result.split.describe()["folds"] == 3
    for evaluation in result.comparison().values():
        assert evaluation.tn + evaluation.fn + evaluation.tp + evaluation.fp == len(frame)  # every row, once
        assert evaluation.fold_mean is not None and evaluation.fold_std is not None and evaluation.fold_std >= 0
    assert "days_in_service" in result.features  # the time column, declared as a feature
    assert result.winner.pipeline.n_features_in_ == 4  # the winner was refitted on all rows and all features
    assert "3-fold cross-validation by group" in result.split.title()
    rows = {row[0]: row[1:] for row in comparison_rows(as_dicts(result.comparison()), spec.selection)}
    for metric in ("Precision", "Recall", "F1-Score", "Selection: f1"):  # every metric, not only the selection's
        assert all(" ± " in cell for cell in rows[f"{metric}, per fold: mean ± spread"])


def test_the_fold_spread_of_each_metric_is_the_mean_and_std_of_the_folds_own_values() -> None:
    frame, spec = machines(units=12, days=20), group_spec(folds=3)
    actual = frame["failure_soon"].to_numpy()
    predicted = frame["temp"].to_numpy() > 92
    splits = evaluation_splits(frame, spec)
    folds = [evaluate(actual[s.validation], predicted[s.validation], spec.selection) for s in splits]
    pooled = with_folds(evaluate(actual, predicted, spec.selection), folds)
    recalls = [f.recall for f in folds]
    assert pooled.fold_spread is not None
    assert pooled.fold_spread["recall"] == pytest.approx([np.mean(recalls), np.std(recalls)])
    assert pooled.fold_spread["f1"][0] == pytest.approx(np.mean([f.f1 for f in folds]))
    assert pooled.fold_spread["score"] == [pooled.fold_mean, pooled.fold_std]
    assert "savings" not in pooled.fold_spread  # no costs declared: nothing to spread
    flat = mlflow_metrics(pooled.to_dict())  # what MLflow gets: numbers only, the spreads flattened
    assert flat["fold_std_recall"] == pytest.approx(np.std(recalls)) and "fold_spread" not in flat


def test_too_few_units_for_the_folds_is_a_training_problem_not_a_crash() -> None:
    frame = machines(units=3, days=10)
    assert "needs at least 5 distinct units, found 3" in (training_problem(frame, group_spec(folds=5)) or "")


def test_split_spec_refuses_what_does_not_fit_the_kind() -> None:
    assert ModelSpec.model_validate(spec_dict(split={"folds": 3})).split.folds == 3  # by time: a rolling origin
    with pytest.raises(ValidationError, match=r"split\.group is the unit column"):
        ModelSpec.model_validate(spec_dict(split={"by": "random", "group": "truck_id"}))
    with pytest.raises(ValidationError, match="must not include the target"):
        ModelSpec.model_validate(spec_dict(features={"include": ["temp", "failure_soon"]}))
    assert ModelSpec.model_validate(spec_dict(features={"include": ["temp", "date_day", "truck_id"]}))
