"""Confusion counts, the classic metrics, the business metric and threshold choice (classification); errors and
their cost (regression): pure functions over arrays."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TypeVar

import numpy as np

from foundation.specs.model import SelectionSpec


@dataclass(frozen=True)
class Evaluation:
    """One row of the comparison table: how a model (or the 'as is' rule) did on the validation rows."""

    tn: int
    fn: int
    tp: int
    fp: int
    precision: float | None  # None when nothing was flagged (undefined, shown as '-')
    recall: float | None  # None when there was nothing to find
    f1: float
    savings: float | None  # business metric: money saved against doing nothing (None without costs)
    score: float  # the selection metric's value
    fold_mean: float | None = None  # with K folds: the selection score's mean and spread over the folds
    fold_std: float | None = None
    fold_spread: dict[str, list[float]] | None = None  # with K folds: each metric's [mean, spread] over the folds

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass(frozen=True)
class ErrorEvaluation:
    """One column of a regression comparison: how far a model's (or the 'as is' expression's) values are from the
    actual ones on the validation rows."""

    rows: int
    mae: float  # mean absolute error, in the target's unit
    rmse: float  # root mean squared error: punishes large misses
    mape: float | None  # mean absolute percentage error (a fraction), over rows whose actual is not 0; None if none
    bias: float  # mean(predicted - actual): above 0, it over-predicts
    cost: float | None  # the error's cost in money (None without `selection.error_cost`)
    score: float  # the selection metric's value (lower is better)
    fold_mean: float | None = None
    fold_std: float | None = None
    fold_spread: dict[str, list[float]] | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


FOLD_METRICS = ("precision", "recall", "f1", "savings", "mae", "rmse", "mape", "bias", "cost", "score")


def evaluate_errors(actual: np.ndarray, predicted: np.ndarray, selection: SelectionSpec) -> ErrorEvaluation:
    actual = np.asarray(actual, dtype=np.float64)
    error = np.asarray(predicted, dtype=np.float64) - actual
    mae = float(np.mean(np.abs(error))) if len(error) else 0.0
    rmse = float(np.sqrt(np.mean(error**2))) if len(error) else 0.0
    nonzero = actual != 0
    mape = float(np.mean(np.abs(error[nonzero]) / np.abs(actual[nonzero]))) if nonzero.any() else None
    bias = float(np.mean(error)) if len(error) else 0.0
    cost = None
    if selection.error_cost is not None:
        over = selection.error_cost.per_unit_over
        under_cost = np.clip(-error, 0, None).sum() * selection.error_cost.per_unit
        over_cost = np.clip(error, 0, None).sum() * (selection.error_cost.per_unit if over is None else over)
        cost = float(under_cost + over_cost)
    values = {"mae": mae, "rmse": rmse, "mape": mape, "cost": cost}
    score = values[selection.metric]
    return ErrorEvaluation(len(error), mae, rmse, mape, bias, cost, float("inf") if score is None else score)


def evaluate_any(actual: np.ndarray, predicted: np.ndarray, selection: SelectionSpec) -> Evaluation | ErrorEvaluation:
    """The task's evaluation: errors when the selection metric is an error, the confusion counts otherwise."""
    if selection.lower_is_better:
        return evaluate_errors(actual, predicted, selection)
    return evaluate(actual, predicted, selection)


E = TypeVar("E", Evaluation, ErrorEvaluation)


def with_folds(pooled: E, per_fold: list[E]) -> E:
    """`pooled` (the counts over every fold's validation rows) with the mean and spread over the folds of every
    metric (a fold where a metric is undefined, e.g. precision with no alert, is left out of that metric's)."""
    spread: dict[str, list[float]] = {}
    for metric in (m for m in FOLD_METRICS if hasattr(pooled, m)):
        values = [getattr(e, metric) for e in per_fold if getattr(e, metric) is not None]
        if values:
            spread[metric] = [float(np.mean(values)), float(np.std(values))]
    return replace(pooled, fold_mean=spread["score"][0], fold_std=spread["score"][1], fold_spread=spread)


def confusion(actual: np.ndarray, predicted: np.ndarray) -> tuple[int, int, int, int]:
    """(tn, fn, tp, fp) of boolean arrays."""
    actual = np.asarray(actual, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    tp = int(np.sum(actual & predicted))
    fp = int(np.sum(~actual & predicted))
    fn = int(np.sum(actual & ~predicted))
    tn = int(np.sum(~actual & ~predicted))
    return tn, fn, tp, fp


def savings(tp: int, fp: int, selection: SelectionSpec) -> float | None:
    """What acting on the alerts saves against doing nothing: each caught event costs `true_positive` instead of
    `false_negative`; each false alarm costs `false_positive`. Missed events cost the same either way."""
    cost = selection.cost
    if cost is None:
        return None
    return tp * (cost.false_negative - cost.true_positive) - fp * cost.false_positive


def evaluate(actual: np.ndarray, predicted: np.ndarray, selection: SelectionSpec) -> Evaluation:
    tn, fn, tp, fp = confusion(actual, predicted)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    saved = savings(tp, fp, selection)
    return Evaluation(tn, fn, tp, fp, precision, recall, f1, saved, _score(precision, recall, f1, saved, selection))


def _score(
    precision: float | None, recall: float | None, f1: float, saved: float | None, selection: SelectionSpec
) -> float:
    metric = selection.metric
    if metric == "f1":
        return f1
    if metric == "precision":
        return precision or 0.0
    if metric == "recall":
        return recall or 0.0
    if metric == "recall_at_precision":
        # The business accepts no alert list below this precision: such a model scores nothing.
        return (recall or 0.0) if (precision or 0.0) >= (selection.min_precision or 0.0) else 0.0
    return saved or 0.0


def choose_threshold(actual: np.ndarray, scores: np.ndarray, selection: SelectionSpec, steps: int = 200) -> float:
    """The score cut maximising the selection metric on calibration rows (ties: the highest cut, fewer alerts)."""
    candidates = np.unique(np.quantile(scores, np.linspace(0, 1, steps + 1), method="lower"))  # observed scores only
    best, best_score = 0.5, -np.inf
    for threshold in candidates:
        if threshold <= 0:
            continue
        score = evaluate(actual, scores >= threshold, selection).score
        if score >= best_score:
            best, best_score = float(threshold), score
    return best
