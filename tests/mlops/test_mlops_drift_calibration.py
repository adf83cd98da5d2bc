"""Per-feature drift cut-offs calibrated against each feature's own in-training window-to-window PSI: a feature that
wanders in training (a random walk, like AI4I's temperatures) alerts only when it leaves that wander; a steady
feature that shifts still alerts; the history has one row per window and feature."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from foundation.specs.model import ModelSpec
from mlops.monitoring import feature_drift_history, windows_back
from tests.mlops.conftest import spec_dict

DAYS = 120


def _frame(shift: float) -> pd.DataFrame:
    """50 rows a day; `walk` random-walks day to day (in training and after); `steady` is iid and moves by
    `shift` standard deviations in the latest 14 days."""
    rng = np.random.default_rng(11)
    level = np.cumsum(rng.normal(0, 1.0, DAYS))
    rows = []
    for day in range(DAYS):
        for _ in range(50):
            rows.append(
                {
                    "date_day": date(2026, 1, 1) + timedelta(days=day),
                    "walk": level[day] + rng.normal(0, 0.3),
                    "steady": rng.normal(shift if day >= DAYS - 14 else 0.0, 1.0),
                }
            )
    return pd.DataFrame(rows)


def _spec(calibrate: bool) -> ModelSpec:
    drift = {"recent": 14, "warn_psi": 0.1, "error_psi": 0.25, "calibrate": calibrate}
    return ModelSpec.model_validate(spec_dict(monitoring={"drift": drift}))


TRAIN_END = (date(2026, 1, 1) + timedelta(days=DAYS - 29)).isoformat()  # 14 days after training, then 14 recent


def test_a_wandering_feature_is_judged_against_its_own_wander() -> None:
    frame = _frame(shift=0.0)
    raw, _ = feature_drift_history(frame, ["walk", "steady"], _spec(calibrate=False), TRAIN_END)
    calibrated, _ = feature_drift_history(frame, ["walk", "steady"], _spec(calibrate=True), TRAIN_END)
    raw_walk = next(r for r in raw if r.feature == "walk")
    walk = next(r for r in calibrated if r.feature == "walk")
    assert raw_walk.status == "drift" and raw_walk.error_at == 0.25  # the spec's cut-off alone: red
    assert walk.wander is not None and walk.wander > 0.25 and walk.error_at == walk.wander
    assert walk.psi == raw_walk.psi and (walk.status != "drift") is (walk.psi <= walk.wander)
    steady = next(r for r in calibrated if r.feature == "steady")
    assert steady.status == "stable" and steady.error_at == 0.25  # its wander is below the spec's cut-off


def test_a_steady_feature_that_shifts_still_alerts_when_calibrated() -> None:
    results, _ = feature_drift_history(_frame(shift=1.5), ["walk", "steady"], _spec(calibrate=True), TRAIN_END)
    steady = next(r for r in results if r.feature == "steady")
    assert steady.status == "drift" and steady.psi > steady.error_at
    assert results[0].feature == "steady"  # furthest beyond its own cut-off first


def test_history_has_each_window_of_each_feature() -> None:
    _, history = feature_drift_history(_frame(shift=1.5), ["walk", "steady"], _spec(calibrate=True), TRAIN_END)
    steady = [w for w in history if w.feature == "steady"]
    training = [w for w in steady if w.in_training]
    after = [w for w in steady if not w.in_training]
    assert len(training) == 6  # 91 training days: six whole windows of 14 (the oldest 7 days are left out)
    assert [w.window_end for w in after] == ["2026-04-30", "2026-04-16"]  # newest first: the check's window first
    assert after[0].status == "drift" and after[1].status == "stable"
    assert all(w.status == "training" for w in training)


def test_windows_back_keeps_whole_windows_only() -> None:
    units = np.arange(1, 31, dtype=float)
    windows = windows_back(units, np.ones(30, dtype=bool), 7)
    assert [int(units[w].min()) for w in windows] == [24, 17, 10, 3]
    assert all(w.sum() == 7 for w in windows)
