"""The time split leaks nothing: validation strictly after training, and no training label window reaching into
validation. `find_leaks` is shown to catch leaky splits, so a passing test means something."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from foundation.specs.model import ModelSpec
from mlops.splits import find_leaks, row_keys, time_split
from tests.mlops.conftest import spec_dict, synthetic_features


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    data = synthetic_features(trucks=5, days=40)
    data["date_day"] = pd.to_datetime(data["date_day"])
    return data


@pytest.mark.parametrize(("fraction", "gap"), [(0.25, 7), (0.1, 0), (0.5, 3), (0.3, 10)])
def test_time_split_leaks_nothing(frame: pd.DataFrame, fraction: float, gap: int) -> None:
    spec = ModelSpec.model_validate(spec_dict())
    split = time_split(frame["date_day"], fraction, gap)
    assert find_leaks(frame["date_day"], row_keys(frame, spec), split.train, split.validation, gap) == []
    train_end, validation_start = frame["date_day"][split.train].max(), frame["date_day"][split.validation].min()
    assert train_end + pd.Timedelta(days=gap) < validation_start
    assert split.validation.sum() > 0 and split.train.sum() > 0
    assert not (split.train & split.validation).any()
    # every row of the validation period is in validation: nothing of the future is dropped into training
    assert split.validation.sum() == (frame["date_day"] >= validation_start).sum()


def test_find_leaks_catches_a_random_split(frame: pd.DataFrame) -> None:
    spec = ModelSpec.model_validate(spec_dict())
    rng = np.random.default_rng(0)
    validation = rng.random(len(frame)) < 0.25
    problems = find_leaks(frame["date_day"], row_keys(frame, spec), ~validation, validation, 7)
    assert any("validation starts" in p for p in problems)


def test_find_leaks_catches_a_label_window_into_validation(frame: pd.DataFrame) -> None:
    spec = ModelSpec.model_validate(spec_dict())
    split = time_split(frame["date_day"], 0.25, gap=0)  # fine for a same-day label, leaky for a 7-day one
    problems = find_leaks(frame["date_day"], row_keys(frame, spec), split.train, split.validation, 7)
    assert problems and "label window" in problems[0]


def test_find_leaks_catches_shared_rows(frame: pd.DataFrame) -> None:
    spec = ModelSpec.model_validate(spec_dict())
    everything = np.ones(len(frame), dtype=bool)
    assert any(
        "both in training and validation" in p
        for p in find_leaks(frame["date_day"], row_keys(frame, spec), everything, everything, 0)
    )


def test_ordinal_time_split() -> None:
    times = pd.Series(range(1, 101))
    split = time_split(times, 0.2, gap=0)
    assert times[split.train].max() == 80 and times[split.validation].min() == 81


def test_split_refuses_when_the_gap_leaves_no_training() -> None:
    with pytest.raises(ValueError, match="no training rows"):
        time_split(pd.Series(pd.date_range("2026-01-01", periods=10)), 0.5, gap=30)
