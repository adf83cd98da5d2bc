"""How a training set is split into training and validation rows: by time, by group or at random (`split.by`).

- `time`: validation = the latest share of the time values, training ends `gap` time units before (label windows).
- `group`: validation = a share of the units (machines, customers, stores: `split.group`, default the first entity
  column); no unit is ever in both. For independent units, where time order says nothing about the future.
- `random`: validation = a share of the rows.

`group` and `random` are stratified by the label (a rare positive class lands in every validation slice), and with
`split.folds` they become K-fold cross-validation: every row is validated once (small data). scikit-learn's
`StratifiedGroupKFold` / `StratifiedKFold` draw them (`GroupKFold` / `KFold` for a numeric target); a one
hold-out split is their first fold. `time` with `split.folds` is a rolling-origin backtest (forecasts): the latest
share of the time values cut into K consecutive windows, each validated by a model trained only on what came
`gap` before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from foundation.specs.model import ModelSpec


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # boolean masks over the frame's rows
    validation: np.ndarray
    validation_start: object  # the first time value in validation
    train_end: object  # the last time value in training (monitoring leaves the rows up to it out)
    by: str = "time"
    train_groups: int | None = None  # with by: group, how many units on each side
    validation_groups: int | None = None
    folds: int | None = None  # K-fold: every row validated once (out of fold), every row trained on

    def title(self) -> str:
        """What the comparison was computed on, in a few words (the table's title)."""
        rows = int(self.validation.sum())
        if self.folds and self.by == "time":
            return f"rolling-origin backtest, {self.folds} windows from {self.validation_start} ({rows} rows)"
        if self.folds:
            return f"{self.folds}-fold cross-validation by {self.by}: every row validated once ({rows} rows)"
        if self.by == "group":
            units = (self.train_groups or 0) + (self.validation_groups or 0)
            return f"validation: {self.validation_groups} of {units} units ({rows} rows)"
        if self.by == "random":
            return f"validation: random rows ({rows} rows)"
        return f"validation {self.validation_start} onwards ({rows} rows)"

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {
            "by": self.by,
            "train_rows": int(self.train.sum()),
            "validation_rows": int(self.validation.sum()),
            "train_end": str(self.train_end),
            "validation_start": str(self.validation_start),
        }
        if self.by == "group":
            described |= {"train_groups": self.train_groups, "validation_groups": self.validation_groups}
        if self.folds:
            described["folds"] = self.folds
        return described


def _gap_delta(sample: object, gap: int) -> object:
    """`gap` time units in the time column's type: days for dates and timestamps, units for numbers."""
    if isinstance(sample, (pd.Timestamp, datetime, date, np.datetime64)):
        return pd.Timedelta(days=gap)
    return gap


def time_split(times: pd.Series, validation_fraction: float, gap: int) -> Split:
    """Validation = the latest `validation_fraction` of distinct time values; training = rows at least `gap` time
    units before validation starts, so a training label window (`gap` long) never reaches the validation period."""
    values = pd.Series(pd.unique(times)).sort_values().reset_index(drop=True)
    if len(values) < 2:
        raise ValueError(f"a time split needs at least 2 distinct time values, found {len(values)}")
    n_validation = max(1, int(np.ceil(len(values) * validation_fraction)))
    n_validation = min(n_validation, len(values) - 1)
    validation_start = values.iloc[len(values) - n_validation]
    train_limit = validation_start - _gap_delta(validation_start, gap)
    validation = (times >= validation_start).to_numpy()
    train = (times < train_limit).to_numpy() if gap else (times < validation_start).to_numpy()
    if not train.any():
        raise ValueError(
            f"no training rows left before {train_limit} (validation starts {validation_start}, gap {gap}): "
            "lower split.validation_fraction or split.gap"
        )
    return Split(train, validation, validation_start, times[train].max())


def rolling_origin_splits(times: pd.Series, validation_fraction: float, folds: int, gap: int) -> list[Split]:
    """A rolling-origin backtest: the latest `validation_fraction` of distinct time values (at least one per fold)
    cut into `folds` consecutive windows, oldest first; each window is validated by a model trained on the rows at
    least `gap` time units before it, as a forecast made at that origin would have been."""
    values = pd.Series(pd.unique(times)).sort_values().reset_index(drop=True)
    n_validation = max(folds, int(np.ceil(len(values) * validation_fraction)))
    if n_validation >= len(values):
        raise ValueError(
            f"a rolling-origin backtest of {folds} windows needs more than {n_validation} distinct time values, "
            f"found {len(values)}"
        )
    splits = []
    for window in np.array_split(values.iloc[len(values) - n_validation :].to_numpy(), folds):
        start, end = window[0], window[-1]
        validation = ((times >= start) & (times <= end)).to_numpy()
        limit = start - _gap_delta(start, gap) if gap else start
        train = (times < limit).to_numpy()
        if not train.any():
            raise ValueError(f"no training rows before {limit} for the backtest window from {start}: lower split.gap")
        splits.append(Split(train, validation, start, times[train].max()))
    return splits


def group_column(spec: ModelSpec) -> str:
    return spec.split.group or spec.entity[0]


def _folds_for(fraction: float) -> int:
    """A hold-out share as a number of folds: 0.25 -> 4 folds, the first one validates."""
    return max(2, round(1 / fraction))


def _fold_splits(frame: pd.DataFrame, spec: ModelSpec, n_splits: int) -> list[Split]:
    """Stratified (group) K-fold over the frame's rows, seeded by the spec: one Split per fold (a numeric target:
    not stratified)."""
    regression = spec.is_regression
    labels = frame[spec.target].to_numpy() if regression else frame[spec.target].astype(bool).to_numpy()
    positions = np.arange(len(frame))
    if spec.split.by == "group":
        groups = frame[group_column(spec)].astype(str).to_numpy()
        units = len(np.unique(groups))
        if units < n_splits:
            raise ValueError(
                f"a split by {group_column(spec)!r} into {n_splits} folds needs at least {n_splits} distinct units, "
                f"found {units}"
            )
        kind = GroupKFold if regression else StratifiedGroupKFold
        folds = kind(n_splits, shuffle=True, random_state=spec.seed).split(positions, labels, groups)
    else:
        if len(frame) < n_splits:
            raise ValueError(f"a random split into {n_splits} folds needs at least {n_splits} rows, found {len(frame)}")
        # stratified: a rare positive class lands in every fold (sklearn warns when it is rarer than the folds)
        kind = KFold if regression else StratifiedKFold
        folds = kind(n_splits, shuffle=True, random_state=spec.seed).split(positions, labels)
    splits = []
    for train_idx, validation_idx in folds:
        train = np.zeros(len(frame), dtype=bool)
        validation = np.zeros(len(frame), dtype=bool)
        train[train_idx] = True
        validation[validation_idx] = True
        splits.append(_split(frame, spec, train, validation))
    return splits


def _split(frame: pd.DataFrame, spec: ModelSpec, train: np.ndarray, validation: np.ndarray) -> Split:
    times = frame[spec.time]
    if spec.split.by != "group":
        return Split(train, validation, times[validation].min(), times[train].max(), spec.split.by)
    groups = frame[group_column(spec)]
    return Split(
        train,
        validation,
        times[validation].min(),
        times[train].max(),
        "group",
        int(groups[train].nunique()),
        int(groups[validation].nunique()),
    )


def holdout_split(frame: pd.DataFrame, spec: ModelSpec, fraction: float) -> Split:
    """One training / validation split of the frame (index 0..n-1) the spec's way, `fraction` validating."""
    if spec.split.by == "time":
        return time_split(frame[spec.time].reset_index(drop=True), fraction, spec.split.gap)
    return _fold_splits(frame.reset_index(drop=True), spec, _folds_for(fraction))[0]


def evaluation_splits(frame: pd.DataFrame, spec: ModelSpec) -> list[Split]:
    """The splits the comparison is computed on: one hold-out, or every fold with `split.folds`."""
    if spec.split.folds and spec.split.by == "time":
        times = frame[spec.time].reset_index(drop=True)
        return rolling_origin_splits(times, spec.split.validation_fraction, spec.split.folds, spec.split.gap)
    if spec.split.folds:
        return _fold_splits(frame.reset_index(drop=True), spec, spec.split.folds)
    return [holdout_split(frame, spec, spec.split.validation_fraction)]


def find_leaks(times: pd.Series, keys: pd.Series, train: np.ndarray, validation: np.ndarray, gap: int) -> list[str]:
    """Why a time split leaks (empty when it does not): shared rows, training rows at or after the validation start,
    or training labels whose window (`gap` time units) reaches into the validation period."""
    problems = shared_rows(keys, train, validation)
    if train.any() and validation.any():
        train_end, validation_start = times[train].max(), times[validation].min()
        if train_end >= validation_start:
            problems.append(f"training reaches {train_end}, validation starts {validation_start}")
        elif gap and train_end + _gap_delta(train_end, gap) >= validation_start:
            problems.append(
                f"training ends {train_end}: its label window of {gap} reaches validation starting {validation_start}"
            )
    return problems


def shared_rows(keys: pd.Series, train: np.ndarray, validation: np.ndarray) -> list[str]:
    shared = set(keys[train]) & set(keys[validation])
    return [f"{len(shared)} row(s) are both in training and validation"] if shared else []


def shared_units(groups: pd.Series, train: np.ndarray, validation: np.ndarray) -> list[str]:
    """A split by group leaks when a unit is on both sides: the model would have met it in training."""
    shared = sorted(set(groups[train].astype(str)) & set(groups[validation].astype(str)))
    if not shared:
        return []
    return [f"{len(shared)} unit(s) are both in training and validation (e.g. {', '.join(shared[:3])})"]


def split_leaks(frame: pd.DataFrame, spec: ModelSpec, split: Split) -> list[str]:
    """The leak check of the split's kind: time order and label windows (time), shared units (group), shared rows."""
    keys = row_keys(frame, spec)
    if split.by == "time":
        return find_leaks(frame[spec.time], keys, split.train, split.validation, spec.split.gap)
    problems = shared_rows(keys, split.train, split.validation)
    if split.by == "group":
        problems += shared_units(frame[group_column(spec)], split.train, split.validation)
    return problems


def row_keys(frame: pd.DataFrame, spec: ModelSpec) -> pd.Series:
    """One string key per row: entity values and time (a prediction's identity)."""
    parts = [frame[c].astype(str) for c in (*spec.entity, spec.time)]
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key
