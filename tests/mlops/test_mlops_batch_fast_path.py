"""Batch scoring's compiled preprocessing (DuckDB SQL -> Arrow -> numpy) gives exactly the scores of the fitted
scikit-learn pipeline on the pandas inputs training uses, for every candidate kind, with NULLs, NaNs, booleans,
integers and an unseen category in the rows scored."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

from foundation.specs.model import CandidateSpec
from mlops.inference import batch_score, compiled_inputs_sql, predictions_uri
from mlops.training import build_pipeline, model_inputs, positive_scores
from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features

CANDIDATES = [
    {"name": "random_forest", "estimator": "random_forest", "params": {"n_estimators": 20, "max_depth": 5}},
    {"name": "logistic_regression", "estimator": "logistic_regression", "params": {"max_iter": 500}},
    {"name": "decision_tree", "estimator": "decision_tree", "params": {"max_depth": 4}},
    {"name": "gradient_boosting", "estimator": "gradient_boosting", "params": {"max_iter": 20}},
]
FEATURES = ["truck_type", "temp", "vibration", "hours", "cold_start", "stops"]


def awkward_features() -> pd.DataFrame:
    """Synthetic truck-days plus a boolean and an integer feature, with NULLs, a NaN and an unseen truck type."""
    frame = synthetic_features(trucks=9, days=40)
    rng = np.random.default_rng(5)
    frame["cold_start"] = rng.random(len(frame)) < 0.3
    frame["stops"] = rng.integers(0, 20, len(frame)).astype("int64")
    frame.loc[frame.index % 17 == 0, "temp"] = None
    frame.loc[5, "vibration"] = float("nan")
    frame.loc[frame.index % 23 == 0, "truck_type"] = None
    frame.loc[frame.index % 31 == 0, "truck_type"] = "bus"  # a category the encoder never saw... unless in training
    return frame


@pytest.mark.parametrize("candidate", CANDIDATES, ids=[c["name"] for c in CANDIDATES])
def test_compiled_batch_scores_equal_the_pipeline_on_pandas(tmp_path: Path, candidate: dict) -> None:
    frame = awkward_features()
    kit = MlWorkspace(tmp_path / "ws")
    kit.publish(frame)
    kit.write_spec(spec_dict(features={"include": FEATURES}, candidates=[candidate]))
    ref = kit.ref()
    training = frame[frame["truck_type"].fillna("") != "bus"]  # "bus" stays unseen
    inputs = model_inputs(training, FEATURES)
    pipeline = build_pipeline(CandidateSpec.model_validate(candidate), inputs, seed=7)
    pipeline.fit(inputs, training["failure_soon"])
    assert compiled_inputs_sql(pipeline, FEATURES) is not None  # the fast path is the one under test

    report = batch_score(kit.workspace, ref, (pipeline, 1, 0.5, FEATURES))
    assert report.rows_scored == len(frame)

    # Independently: the published rows as the pandas path sees them, scored by the whole pipeline.
    got = DeltaTable(predictions_uri(kit.workspace, ref)).to_pandas()
    merged = got.merge(frame, on=["truck_id", "date_day"], validate="one_to_one")
    expected = positive_scores(pipeline, model_inputs(merged, FEATURES))
    np.testing.assert_array_equal(merged["score"].to_numpy(), expected)
    np.testing.assert_array_equal(merged["label"].to_numpy(), expected >= 0.5)


def test_an_unknown_pipeline_shape_falls_back_to_pandas(tmp_path: Path) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.tree import DecisionTreeClassifier

    frame = synthetic_features(trucks=4, days=20)
    features = ["temp", "vibration"]
    pipeline = Pipeline([("same", FunctionTransformer()), ("model", DecisionTreeClassifier(max_depth=2))])
    pipeline.fit(model_inputs(frame, features), frame["failure_soon"])
    assert compiled_inputs_sql(pipeline, features) is None
    kit = MlWorkspace(tmp_path / "ws")
    kit.publish(frame)
    kit.write_spec(spec_dict(features={"include": features}))
    ref = kit.ref()
    batch_score(kit.workspace, ref, (pipeline, 1, 0.5, features))
    got = DeltaTable(predictions_uri(kit.workspace, ref)).to_pandas().merge(frame, on=["truck_id", "date_day"])
    np.testing.assert_array_equal(got["score"], positive_scores(pipeline, model_inputs(got, features)))


def test_appends_to_predictions_written_with_a_timestamp_time_column(tmp_path: Path) -> None:
    """Tables written before scoring read Arrow hold the date as a timestamp: new rows are cast to match."""
    import pyarrow as pa
    from deltalake import write_deltalake

    frame = synthetic_features(trucks=3, days=20)
    features = ["truck_type", "temp"]
    kit = MlWorkspace(tmp_path / "ws")
    kit.write_spec(spec_dict(features={"include": features}))
    ref = kit.ref()
    inputs = model_inputs(frame, features)
    candidate = CandidateSpec.model_validate(CANDIDATES[2])
    pipeline = build_pipeline(candidate, inputs, seed=7).fit(inputs, frame["failure_soon"])
    early = frame[frame["date_day"] < frame["date_day"].min() + timedelta(days=10)]
    kit.publish(early)
    batch_score(kit.workspace, ref, (pipeline, 1, 0.5, features))
    uri = predictions_uri(kit.workspace, ref)
    old = DeltaTable(uri).to_pyarrow_table()
    index = old.schema.get_field_index("date_day")
    old = old.set_column(index, "date_day", old.column("date_day").cast(pa.timestamp("us")))
    write_deltalake(uri, old, mode="overwrite", schema_mode="overwrite")

    kit.publish(frame)
    report = batch_score(kit.workspace, ref, (pipeline, 1, 0.5, features))
    assert report.rows_scored == len(frame) - len(early) and report.rows_already_scored == len(early)
    table = DeltaTable(uri).to_pandas()
    assert len(table) == len(frame) and table["prediction_id"].is_unique
