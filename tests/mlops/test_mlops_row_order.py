"""Two runs that publish the same feature rows in a different physical order (as two `foundation demo` runs do:
ingestion lands files in whatever order they finish) train to identical candidates, thresholds and metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlops.dataset import read_feature_table
from mlops.training import train_and_evaluate
from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features


def _train(root: Path, frame: pd.DataFrame) -> tuple[dict, dict, pd.DataFrame]:
    kit = MlWorkspace(root)
    kit.publish(frame)
    kit.write_spec(spec_dict())
    ref = kit.ref()
    training, _ = read_feature_table(kit.workspace, ref.usecase, ref.spec, training=True)
    result = train_and_evaluate(training, ref.spec)
    metrics = {name: evaluation.to_dict() for name, evaluation in result.comparison().items()}
    thresholds = {c.name: c.threshold for c in result.candidates}
    return metrics, thresholds, training


def test_training_ignores_the_physical_row_order_of_the_feature_table(tmp_path: Path) -> None:
    frame = synthetic_features(trucks=10, days=50)
    # Duplicate (truck, day) keys with different values: only a total order makes their order reproducible.
    twins = frame.iloc[::37].copy()
    twins["temp"] += 0.5
    frame = pd.concat([frame, twins], ignore_index=True)
    shuffled = frame.sample(frac=1.0, random_state=np.random.default_rng(1).integers(1 << 31)).reset_index(drop=True)
    assert not shuffled[["date_day", "truck_id", "temp"]].equals(frame[["date_day", "truck_id", "temp"]])

    first = _train(tmp_path / "a", frame)
    second = _train(tmp_path / "b", shuffled)

    pd.testing.assert_frame_equal(first[2], second[2])  # the same rows in the same order
    assert first[1] == second[1]  # thresholds, to the last bit
    assert first[0] == second[0]  # every candidate's and the baseline's confusion counts and metrics
