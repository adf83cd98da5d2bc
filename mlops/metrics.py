"""Confusion counts, the classic metrics, the business metric and threshold choice: pure functions over arrays."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

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


FOLD_METRICS = ("precision", "recall", "f1", "savings", "score")


def with_folds(pooled: Evaluation, per_fold: list[Evaluation]) -> Evaluation:
    """`pooled` (the counts over every fold's validation rows) with the mean and spread over the folds of every
    metric (a fold where a metric is undefined, e.g. precision with no alert, is left out of that metric's)."""
    spread: dict[str, list[float]] = {}
    for metric in FOLD_METRICS:
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
