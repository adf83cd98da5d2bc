"""Fit the candidates and evaluate them with the 'as is' rule on the same validation rows.

No I/O: a DataFrame in, fitted pipelines and evaluations out (MLflow logging and registration are in
`mlops.tracking` / `mlops.registry`). The same data and seed give the same models and numbers.
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
from mlops.dataset import TimeSplit, find_leaks, row_keys, time_split
from mlops.metrics import Evaluation, choose_threshold, evaluate


@dataclass
class CandidateResult:
    name: str
    estimator: str
    params: dict[str, Any]
    pipeline: Pipeline
    threshold: float
    evaluation: Evaluation
    scores: np.ndarray  # validation scores
    fit_seconds: float


@dataclass
class TrainingResult:
    spec: ModelSpec
    features: list[str]
    split: TimeSplit
    baseline: Evaluation
    candidates: list[CandidateResult]
    validation_actual: np.ndarray
    baseline_predicted: np.ndarray
    input_example: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def winner(self) -> CandidateResult:
        """Best selection score; ties go to the earlier candidate in the spec (stable, reproducible)."""
        return max(self.candidates, key=lambda c: c.evaluation.score)

    def comparison(self) -> dict[str, Evaluation]:
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


def positive_scores(pipeline: Pipeline, inputs: pd.DataFrame) -> np.ndarray:
    classes = list(pipeline.classes_)
    probabilities = pipeline.predict_proba(inputs)
    return probabilities[:, classes.index(True)] if True in classes else np.zeros(len(inputs))


def reproducible_scores(pipeline: Pipeline, inputs: pd.DataFrame) -> np.ndarray:
    """`positive_scores` with the estimator on one job: a forest predicting with `n_jobs` > 1 adds its trees'
    probabilities in the order its threads finish, so the last bits of the scores (and a threshold picked among
    them) differ from one process to the next. Used for evaluation (validation-sized); batch scoring keeps the jobs."""
    model = pipeline[-1]
    jobs = model.get_params(deep=False).get("n_jobs")
    if jobs in (None, 1):
        return positive_scores(pipeline, inputs)
    model.set_params(n_jobs=1)
    try:
        return positive_scores(pipeline, inputs)
    finally:
        model.set_params(n_jobs=jobs)


def _threshold(spec: ModelSpec, candidate: CandidateSpec, frame: pd.DataFrame, train: np.ndarray) -> float:
    """`auto`: fit on the earlier part of training, pick the cut on its latest slice (out of time, like validation)."""
    if spec.threshold != "auto":
        return float(spec.threshold)
    times = frame[spec.time][train].reset_index(drop=True)
    try:
        inner = time_split(times, spec.split.calibration_fraction, spec.split.gap)
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
        split = time_split(frame[spec.time].reset_index(drop=True), spec.split.validation_fraction, spec.split.gap)
    except ValueError as exc:
        return str(exc)
    labels = frame[spec.target].astype(bool).to_numpy()
    positives = int(labels[split.train].sum())
    if positives == 0 or positives == int(split.train.sum()):
        return f"training has one class only ({positives} positive of {int(split.train.sum())} rows): need both"
    return None


def train_and_evaluate(frame: pd.DataFrame, spec: ModelSpec) -> TrainingResult:
    """Split by time, check the split leaks nothing, evaluate the baseline, fit and evaluate every candidate."""
    started = time.perf_counter()
    frame = frame.reset_index(drop=True)
    times = frame[spec.time]
    split = time_split(times, spec.split.validation_fraction, spec.split.gap)
    leaks = find_leaks(times, row_keys(frame, spec), split.train, split.validation, spec.split.gap)
    if leaks:  # cannot happen with time_split; guards against a future change of it
        raise AssertionError("the split leaks: " + "; ".join(leaks))
    features = spec.feature_columns(list(frame.columns))
    actual = frame[spec.target].astype(bool).to_numpy()
    validation_frame = frame[split.validation].reset_index(drop=True)
    validation_actual = actual[split.validation]
    baseline_predicted = baseline_predictions(validation_frame, spec.baseline.rule)
    baseline = evaluate(validation_actual, baseline_predicted, spec.selection)
    train_inputs = model_inputs(frame[split.train], features)
    validation_inputs = model_inputs(validation_frame, features)
    results = []
    for candidate in spec.candidates:
        fit_started = time.perf_counter()
        threshold = _threshold(spec, candidate, frame, split.train)
        pipeline = build_pipeline(candidate, train_inputs, spec.seed).fit(train_inputs, actual[split.train])
        scores = reproducible_scores(pipeline, validation_inputs)
        evaluation = evaluate(validation_actual, scores >= threshold, spec.selection)
        results.append(
            CandidateResult(
                candidate.name,
                candidate.class_path,
                dict(candidate.params),
                pipeline,
                threshold,
                evaluation,
                scores,
                time.perf_counter() - fit_started,
            )
        )
    return TrainingResult(
        spec,
        features,
        split,
        baseline,
        results,
        validation_actual,
        baseline_predicted,
        train_inputs.head(5),
        {"train_and_evaluate": time.perf_counter() - started},
    )
