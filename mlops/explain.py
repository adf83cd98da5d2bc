"""Explanations: which features drive a model (permutation importance on validation rows, per candidate) and which
drive one prediction (per-feature contributions, on request in the API).

- **Permutation importance** (`sklearn.inspection.permutation_importance`): how much the validation average precision
  drops when one input column is shuffled, `REPEATS` times; on the raw columns, so a text column one-hot encoded by
  the pipeline counts once.
- **Contributions of one prediction**, exact decompositions of the model's own output, per input column:
  - linear models (`coef_`): coefficient x the standardised (or one-hot) value, in log-odds; bias = the intercept;
  - scikit-learn trees and forests (`tree_`, `estimators_`): along the row's decision path, each split's change in
    the positive-class share is credited to the split's feature (Saabas), averaged over the trees, in probability;
    bias = the root's share;
  - histogram gradient boosting (`_predictors`): the same walk over each tree's node values (an internal node's value
    is the count-weighted mean of its children's), in log-odds; bias = the baseline plus the roots' values.
  Bias + the contributions = the model's output for the row (tested). shap would give Shapley values but brings
  numba and llvmlite; these decompositions need only the fitted arrays. A regressor's are in the target's unit
  (its prediction = bias + contributions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops.report import close_figure, importance_figure

REPEATS = 5
SCORING = "average_precision"
REGRESSION_SCORING = "neg_mean_absolute_error"  # the drop is the rise of the MAE, in the target's unit
TOP = 5  # contributions returned per prediction


# -- permutation importance (training) ----------------------------------------------------------------------------


def permutation_importances(
    pipeline: Any, inputs: pd.DataFrame, actual: np.ndarray, seed: int, regression: bool = False
) -> list[dict]:
    """Per input column: mean and spread of the validation score's drop when it is shuffled, largest first: average
    precision for a classifier, mean absolute error for a regressor (`REGRESSION_SCORING`). [] when a classifier's
    validation holds one class only (average precision is undefined)."""
    from sklearn.inspection import permutation_importance  # lazy: scikit-learn (1.4 s); the API imports this module
    from threadpoolctl import threadpool_limits  # lazy: as above (it comes with scikit-learn)

    if len(inputs) == 0 or (not regression and len(np.unique(actual)) < 2):
        return []
    model = pipeline[-1] if hasattr(pipeline, "steps") else pipeline
    jobs = model.get_params(deep=False).get("n_jobs")
    if jobs not in (None, 1):  # one thread: a forest's threads cost more than they save on validation-sized data
        model.set_params(n_jobs=1)
    try:
        # OpenMP threads (histogram boosting's predict) spin more than they work on validation-sized batches
        with threadpool_limits(limits=1, user_api="openmp"):
            found = permutation_importance(
                pipeline,
                inputs,
                actual,
                scoring=REGRESSION_SCORING if regression else SCORING,
                n_repeats=REPEATS,
                random_state=seed,
                n_jobs=1,
            )
    finally:
        if jobs not in (None, 1):
            model.set_params(n_jobs=jobs)
    rows = [
        {"feature": str(name), "mean": float(mean), "std": float(std)}
        for name, mean, std in zip(inputs.columns, found.importances_mean, found.importances_std, strict=True)
    ]
    return sorted(rows, key=lambda r: -r["mean"])


def mean_importances(per_fold: list[list[dict]]) -> list[dict]:
    """K folds: each feature's mean drop and spread averaged over the folds."""
    features = {r["feature"] for fold in per_fold for r in fold}
    rows = []
    for feature in features:
        found = [r for fold in per_fold for r in fold if r["feature"] == feature]
        rows.append(
            {
                "feature": feature,
                "mean": float(np.mean([r["mean"] for r in found])),
                "std": float(np.mean([r["std"] for r in found])),
            }
        )
    return sorted(rows, key=lambda r: -r["mean"])


def log_importances(importances: list[dict], title: str, regression: bool = False) -> None:
    """In the active MLflow run: `permutation_importance.json` and a bar chart `permutation_importance.png`."""
    import mlflow  # lazy: mlflow (seconds), only inside a training run

    scoring = REGRESSION_SCORING if regression else SCORING
    mlflow.log_dict(
        {"scoring": scoring, "repeats": REPEATS, "data": "validation rows", "features": importances},
        "permutation_importance.json",
    )
    if importances:
        figure = importance_figure(importances, title, scoring)
        mlflow.log_figure(figure, "permutation_importance.png")
        close_figure(figure)


# -- contributions of one prediction (serving) --------------------------------------------------------------------


class ExplainUnsupported(ValueError):
    """The model is neither a linear model nor a scikit-learn tree ensemble this module can decompose."""


@dataclass(frozen=True)
class Explanation:
    method: str
    unit: str  # log-odds | probability
    bias: np.ndarray  # per row
    contributions: np.ndarray  # rows x input columns
    columns: list[str]


def _column_owners(preprocess: Any, columns: list[str]) -> list[str]:
    """For each column the preprocessing outputs, the input column it comes from (one-hot columns share one)."""
    owners: list[str] = []
    for _, transformer, names in preprocess.transformers_:
        if transformer == "drop" or len(names) == 0:
            continue
        if transformer == "passthrough":
            owners += list(names)
            continue
        last = transformer[-1] if hasattr(transformer, "steps") else transformer
        if hasattr(last, "categories_"):
            owners += [name for name, cats in zip(names, last.categories_, strict=True) for _ in cats]
        else:
            owners += list(names)
    if not owners:
        owners = list(columns)
    return owners


def _fold(values: np.ndarray, owners: list[str], columns: list[str]) -> np.ndarray:
    """Sum the contributions of a preprocessing output's columns into their input column's."""
    index = {c: i for i, c in enumerate(columns)}
    out = np.zeros((values.shape[0], len(columns)))
    for j, owner in enumerate(owners):
        out[:, index[owner]] += values[:, j]
    return out


def _positive(model: Any) -> int:
    """The positive class's column of a classifier; -1 for a regressor."""
    if not hasattr(model, "classes_"):
        return -1
    classes = list(model.classes_)
    return next((i for i, c in enumerate(classes) if c is True or c == 1), len(classes) - 1)


def _linear(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coef = np.atleast_2d(model.coef_)[0]  # a classifier's (1, n); a regressor's (n,)
    return np.full(len(x), float(np.asarray(model.intercept_).ravel()[0])), x * coef


def _saabas(tree: Any, x: np.ndarray, positive: int) -> tuple[np.ndarray, np.ndarray]:
    """One scikit-learn tree: the root's positive share, and each split's change of it credited to its feature."""
    structure = tree.tree_
    values = structure.value[:, 0, :]
    # a classifier's node holds class shares (its positive one is explained); a regressor's, its mean value
    share = values[:, positive] / values.sum(axis=1) if positive >= 0 else values[:, 0]
    paths = tree.decision_path(x.astype(np.float32))
    contributions = np.zeros(x.shape)
    for row in range(len(x)):
        nodes = paths.indices[paths.indptr[row] : paths.indptr[row + 1]]  # root to leaf: ids grow along a path
        parents, children = nodes[:-1], nodes[1:]
        np.add.at(contributions[row], structure.feature[parents], share[children] - share[parents])
    return np.full(len(x), share[0]), contributions


def _trees(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    trees = [model] if hasattr(model, "tree_") else list(model.estimators_)
    positive = _positive(model)
    parts = [_saabas(tree, x, positive) for tree in trees]
    return np.mean([b for b, _ in parts], axis=0), np.mean([c for _, c in parts], axis=0)


def _node_values(nodes: np.ndarray) -> np.ndarray:
    """Every node's value: a leaf's own, an internal node's the count-weighted mean of its children's (children
    come after their parent in the array, so one backward pass fills them)."""
    values = nodes["value"].astype("float64").copy()
    for i in range(len(nodes) - 1, -1, -1):
        if not nodes["is_leaf"][i]:
            left, right = nodes["left"][i], nodes["right"][i]
            n_left, n_right = nodes["count"][left], nodes["count"][right]
            values[i] = (n_left * values[left] + n_right * values[right]) / max(n_left + n_right, 1)
    return values


def _walk(nodes: np.ndarray, values: np.ndarray, row: np.ndarray, out: np.ndarray) -> None:
    """One row down one boosted tree, as its predictor goes (NaN follows the split's missing side): each step's
    change of value is added to `out` at the split's feature."""
    node = 0
    while not nodes["is_leaf"][node]:
        feature = nodes["feature_idx"][node]
        value = row[feature]
        left = nodes["missing_go_to_left"][node] if np.isnan(value) else value <= nodes["num_threshold"][node]
        child = nodes["left"][node] if left else nodes["right"][node]
        out[feature] += values[child] - values[node]
        node = child


def _boosting(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bias = np.full(len(x), float(np.asarray(model._baseline_prediction).ravel()[0]))
    contributions = np.zeros(x.shape)
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ExplainUnsupported("a boosted tree splits on a native categorical feature")
        values = _node_values(nodes)
        bias += values[0]
        for row in range(len(x)):
            _walk(nodes, values, x[row], contributions[row])
    return bias, contributions


def _kind(model: Any) -> str | None:
    if hasattr(model, "coef_"):
        return "linear"
    if hasattr(model, "tree_") or (hasattr(model, "estimators_") and hasattr(model.estimators_[0], "tree_")):
        return "trees"
    if hasattr(model, "_predictors") and hasattr(model, "_baseline_prediction"):
        return "boosting"
    return None


def explainable(pipeline: Any) -> str | None:
    """Why `explain_rows` cannot decompose this fitted pipeline's output, or None when it can."""
    if not hasattr(pipeline, "steps") or len(pipeline.steps) < 2:
        return "the model is not a preprocessing + estimator pipeline"
    if _kind(pipeline[-1]) is None:
        return f"{type(pipeline[-1]).__name__} is neither a linear model nor a scikit-learn tree model"
    return None


def explain_rows(pipeline: Any, frame: pd.DataFrame) -> Explanation:
    """Each row's bias and per-input-column contributions to the model's output (see the module's docstring)."""
    reason = explainable(pipeline)
    if reason is not None:
        raise ExplainUnsupported(reason)
    preprocess, model = pipeline[:-1], pipeline[-1]
    x = np.asarray(preprocess.transform(frame), dtype="float64")
    kind = _kind(model)
    classifier = hasattr(model, "classes_")
    if kind == "linear":
        method, (bias, raw) = "coefficient x standardised value", _linear(model, x)
    elif kind == "trees":
        method, (bias, raw) = "decision path (Saabas)", _trees(model, x)
    else:
        method, (bias, raw) = "boosted decision paths", _boosting(model, x)
    unit = ("probability" if kind == "trees" else "log-odds") if classifier else "target"
    step = preprocess[-1] if hasattr(preprocess, "steps") else preprocess
    columns = list(frame.columns)
    owners = _column_owners(step, columns) if hasattr(step, "transformers_") else columns
    if len(owners) != x.shape[1]:  # e.g. an imputer that dropped a column empty at training
        raise ExplainUnsupported("the preprocessing's output columns cannot be traced back to the input columns")
    return Explanation(method, unit, bias, _fold(raw, owners, columns), columns)


def top_contributions(explanation: Explanation, frame: pd.DataFrame, top: int = TOP) -> list[list[dict[str, Any]]]:
    """Per row, the `top` input columns by absolute contribution: feature, its value, its contribution."""
    out = []
    for row in range(len(frame)):
        values = explanation.contributions[row]
        order = np.argsort(-np.abs(values), kind="stable")[:top]
        out.append(
            [
                {
                    "feature": explanation.columns[j],
                    "value": _plain(frame.iloc[row, j]),
                    "contribution": round(float(values[j]), 6),
                }
                for j in order
            ]
        )
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
