"""Fit the candidates and evaluate them with the 'as is' rule on the same validation rows.

No I/O: a DataFrame in, fitted pipelines and evaluations out (MLflow logging and registration are in
`mlops.pipeline` / `mlops.registry`). The same data and seed give the same models and numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from foundation.specs.estimators import import_class
from foundation.specs.model import CandidateSpec, ModelSpec
from mlops.explain import mean_importances, permutation_importances
from mlops.metrics import ErrorEvaluation, Evaluation, choose_threshold, evaluate_any, with_folds
from mlops.splits import Split, evaluation_splits, holdout_split, split_leaks


@dataclass
class CandidateResult:
    name: str
    estimator: str
    params: dict[str, Any]
    pipeline: Pipeline
    threshold: float | None  # classification: the score cut of an alert; regression: None
    evaluation: Evaluation | ErrorEvaluation
    scores: np.ndarray  # validation scores (regression: the predicted values)
    fit_seconds: float
    importance: list[dict[str, Any]] = field(default_factory=list)  # permutation importance on validation rows


@dataclass
class TrainingResult:
    spec: ModelSpec
    features: list[str]
    split: Split  # the hold-out; with K folds, every row (each validated once, out of fold)
    baseline: Evaluation | ErrorEvaluation
    candidates: list[CandidateResult]
    validation_actual: np.ndarray
    baseline_predicted: np.ndarray
    input_example: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def winner(self) -> CandidateResult:
        """Best selection score (the lowest error for regression); ties go to the earlier candidate in the spec."""
        if self.spec.selection.lower_is_better:
            return min(self.candidates, key=lambda c: c.evaluation.score)
        return max(self.candidates, key=lambda c: c.evaluation.score)

    def comparison(self) -> dict[str, Evaluation | ErrorEvaluation]:
        """'As is' first, then each candidate in spec order: the columns of the comparison table."""
        return {self.spec.baseline.name: self.baseline, **{c.name: c.evaluation for c in self.candidates}}


def model_inputs(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The features as the model sees them: booleans as 0/1 floats, integers as floats (a stable signature)."""
    inputs = frame[features].copy()
    for column in features:
        dtype = inputs[column].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            inputs[column] = inputs[column].astype("float64")
        else:
            inputs[column] = inputs[column].astype("object").where(inputs[column].notna(), None)
    return inputs


def build_pipeline(candidate: CandidateSpec, inputs: pd.DataFrame, seed: int) -> Pipeline:
    """Impute + scale numbers, one-hot encode text columns, then the estimator (seeded when it takes a seed)."""
    numeric = [c for c in inputs.columns if pd.api.types.is_float_dtype(inputs[c].dtype)]
    categorical = [c for c in inputs.columns if c not in numeric]
    preprocess = ColumnTransformer(
        [
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ],
        verbose_feature_names_out=False,
    )
    cls = import_class(candidate.class_path)
    params = dict(candidate.params)
    if "random_state" in cls().get_params(deep=False):
        params.setdefault("random_state", seed)
    return Pipeline([("preprocess", preprocess), ("model", cls(**params))])


def baseline_predictions(frame: pd.DataFrame, rule: str) -> np.ndarray:
    """The 'as is' rule evaluated by DuckDB on each row (NULL counts as no alert), in the frame's order."""
    con = duckdb.connect()
    try:
        con.register("rows", frame.reset_index(drop=True))
        result = con.execute(f"select coalesce(({rule}), false) as flagged from rows").df()
    finally:
        con.close()
    return result["flagged"].to_numpy(dtype=bool)


def baseline_values(frame: pd.DataFrame, expression: str) -> np.ndarray:
    """The 'as is' expression of a regression evaluated by DuckDB on each row, as floats (NULL: 0, a forecast of
    nothing; keep such rows out with `row_filter`), in the frame's order."""
    con = duckdb.connect()
    try:
        con.register("rows", frame.reset_index(drop=True))
        result = con.execute(f"select coalesce(cast(({expression}) as double), 0) as value from rows").df()
    finally:
        con.close()
    return result["value"].to_numpy(dtype=np.float64)


def baseline_outputs(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    if spec.is_regression:
        return baseline_values(frame, spec.baseline.expression or "null")
    return baseline_predictions(frame, spec.baseline.rule or "false")


def target_values(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """The label: booleans (classification) or floats (regression)."""
    if spec.is_regression:
        return frame[spec.target].astype("float64").to_numpy()
    return frame[spec.target].astype(bool).to_numpy()


def positive_scores(pipeline: Pipeline, inputs: pd.DataFrame) -> np.ndarray:
    classes = list(pipeline.classes_)
    probabilities = pipeline.predict_proba(inputs)
    return probabilities[:, classes.index(True)] if True in classes else np.zeros(len(inputs))


def model_outputs(pipeline: Pipeline, inputs: pd.DataFrame) -> np.ndarray:
    """A classifier's positive-class probability, a regressor's predicted value."""
    if hasattr(pipeline, "predict_proba"):
        return positive_scores(pipeline, inputs)
    return np.asarray(pipeline.predict(inputs), dtype=np.float64)


def reproducible_scores(pipeline: Pipeline, inputs: pd.DataFrame) -> np.ndarray:
    """`positive_scores` with the estimator on one job: a forest predicting with `n_jobs` > 1 adds its trees'
    probabilities in the order its threads finish, so the last bits of the scores (and a threshold picked among
    them) differ from one process to the next. Used for evaluation (validation-sized); batch scoring keeps the jobs."""
    model = pipeline[-1]
    jobs = model.get_params(deep=False).get("n_jobs")
    if jobs in (None, 1):
        return model_outputs(pipeline, inputs)
    model.set_params(n_jobs=1)
    try:
        return model_outputs(pipeline, inputs)
    finally:
        model.set_params(n_jobs=jobs)


def _threshold(spec: ModelSpec, candidate: CandidateSpec, frame: pd.DataFrame, train: np.ndarray) -> float | None:
    """`auto`: fit on part of training, pick the cut on the rest, split the way validation is (by time: the latest
    slice, out of time like validation; by group: other units). A regression has no threshold."""
    if spec.is_regression:
        return None
    if spec.threshold != "auto":
        return float(spec.threshold)
    try:
        inner = holdout_split(frame[train].reset_index(drop=True), spec, spec.split.calibration_fraction)
    except ValueError:
        return 0.5  # training too short to hold out a calibration slice: the default cut
    part = frame[train].reset_index(drop=True)
    features = spec.feature_columns(list(frame.columns))
    actual = part[spec.target].astype(bool).to_numpy()
    if actual[inner.train].all() or not actual[inner.train].any():
        return 0.5  # one class only in the fit part: nothing to calibrate on
    fit_inputs = model_inputs(part[inner.train], features)
    pipeline = build_pipeline(candidate, fit_inputs, spec.seed).fit(fit_inputs, actual[inner.train])
    scores = reproducible_scores(pipeline, model_inputs(part[inner.validation], features))
    return choose_threshold(actual[inner.validation], scores, spec.selection)


def training_problem(frame: pd.DataFrame, spec: ModelSpec) -> str | None:
    """Why this data cannot train the spec (too few time values for the split, one class only), else None."""
    if frame.empty:
        return "the training set is empty (is the feature table built, does row_filter keep any row?)"
    try:
        split = evaluation_splits(frame, spec)[0]
    except ValueError as exc:
        return str(exc)
    if spec.is_regression:
        target = frame[spec.target]
        if not pd.api.types.is_numeric_dtype(target.dtype) or pd.api.types.is_bool_dtype(target.dtype):
            return f"task regression needs a numeric target: {spec.target} is {target.dtype}"
        missing = int(target.isna().sum())
        return f"{missing} training row(s) have no {spec.target}: keep them out with row_filter" if missing else None
    labels = frame[spec.target].astype(bool).to_numpy()
    positives = int(labels[split.train].sum())
    if positives == 0 or positives == int(split.train.sum()):
        return f"training has one class only ({positives} positive of {int(split.train.sum())} rows): need both"
    return None


def train_and_evaluate(frame: pd.DataFrame, spec: ModelSpec) -> TrainingResult:
    """Split (`split.by`), check no split leaks, evaluate the baseline and every candidate on the same rows.

    One hold-out: fit on training, evaluate on validation. K folds: every row is validated once by a model that did
    not see it (the counts are pooled, each fold's score gives the spread), then each candidate is refit on all rows."""
    started = time.perf_counter()
    frame = frame.reset_index(drop=True)
    splits = evaluation_splits(frame, spec)
    for split in splits:
        leaks = split_leaks(frame, spec, split)
        if leaks:  # cannot happen with these splits; guards against a future change of them
            raise AssertionError("the split leaks: " + "; ".join(leaks))
    features = spec.feature_columns(list(frame.columns))
    actual = target_values(frame, spec)
    baseline_all = baseline_outputs(frame, spec)
    if len(splits) == 1:
        (split,) = splits
        results = [_fit_holdout(spec, candidate, frame, features, actual, split) for candidate in spec.candidates]
        baseline = evaluate_any(actual[split.validation], baseline_all[split.validation], spec.selection)
    else:
        results = [_fit_folds(spec, candidate, frame, features, actual, splits) for candidate in spec.candidates]
        baseline = _pooled(actual, baseline_all, splits, spec)
        split = _all_rows(frame, spec, splits)
    return TrainingResult(
        spec,
        features,
        split,
        baseline,
        results,
        actual[split.validation],
        baseline_all[split.validation],
        model_inputs(frame[split.validation], features).head(5),
        {"train_and_evaluate": time.perf_counter() - started},
    )


def _fit_holdout(
    spec: ModelSpec,
    candidate: CandidateSpec,
    frame: pd.DataFrame,
    features: list[str],
    actual: np.ndarray,
    split: Split,
) -> CandidateResult:
    started = time.perf_counter()
    threshold = _threshold(spec, candidate, frame, split.train)
    train_inputs = model_inputs(frame[split.train], features)
    pipeline = build_pipeline(candidate, train_inputs, spec.seed).fit(train_inputs, actual[split.train])
    validation_inputs = model_inputs(frame[split.validation], features)
    scores = reproducible_scores(pipeline, validation_inputs)
    predicted = scores if threshold is None else scores >= threshold
    evaluation = evaluate_any(actual[split.validation], predicted, spec.selection)
    fit_seconds = time.perf_counter() - started
    importance = permutation_importances(
        pipeline, validation_inputs, actual[split.validation], spec.seed, regression=spec.is_regression
    )
    return CandidateResult(
        candidate.name,
        candidate.class_path,
        dict(candidate.params),
        pipeline,
        threshold,
        evaluation,
        scores,
        fit_seconds,
        importance,
    )


def _fit_folds(
    spec: ModelSpec,
    candidate: CandidateSpec,
    frame: pd.DataFrame,
    features: list[str],
    actual: np.ndarray,
    splits: list[Split],
) -> CandidateResult:
    """Out-of-fold predictions (each fold: threshold and model from the other folds), then the model on all rows."""
    started = time.perf_counter()
    scores = np.zeros(len(frame))
    predicted = np.zeros(len(frame), dtype=np.float64 if spec.is_regression else bool)
    importances = []
    for split in splits:
        fold = _fit_holdout(spec, candidate, frame, features, actual, split)
        scores[split.validation] = fold.scores
        predicted[split.validation] = fold.scores if fold.threshold is None else fold.scores >= fold.threshold
        importances.append(fold.importance)
    everything = np.ones(len(frame), dtype=bool)
    threshold = _threshold(spec, candidate, frame, everything)
    inputs = model_inputs(frame, features)
    pipeline = build_pipeline(candidate, inputs, spec.seed).fit(inputs, actual)
    return CandidateResult(
        candidate.name,
        candidate.class_path,
        dict(candidate.params),
        pipeline,
        threshold,
        _pooled(actual, predicted, splits, spec),
        scores[_validated(splits)],
        time.perf_counter() - started,
        mean_importances(importances),
    )


def _validated(splits: list[Split]) -> np.ndarray:
    """The rows some fold validates: every row for K-fold, the backtest windows for a rolling origin."""
    return np.logical_or.reduce([s.validation for s in splits])


def _pooled(
    actual: np.ndarray, predicted: np.ndarray, splits: list[Split], spec: ModelSpec
) -> Evaluation | ErrorEvaluation:
    """The metrics over every validated row (each validated once) and each metric of each fold (mean, spread)."""
    per_fold = [evaluate_any(actual[s.validation], predicted[s.validation], spec.selection) for s in splits]
    validated = _validated(splits)
    return with_folds(evaluate_any(actual[validated], predicted[validated], spec.selection), per_fold)


def _all_rows(frame: pd.DataFrame, spec: ModelSpec, splits: list[Split]) -> Split:
    """What a K-fold training reports as its split: every row validated (out of fold; a rolling origin: its
    windows), every row trained on (the refit)."""
    everything = np.ones(len(frame), dtype=bool)
    validated = _validated(splits)
    times = frame[spec.time]
    first = splits[0]  # every fold holds all the units, on one side or the other
    units = (first.train_groups or 0) + (first.validation_groups or 0) if first.by == "group" else None
    return Split(everything, validated, times[validated].min(), times.max(), first.by, units, units, len(splits))
