"""The example rows logged with each model (the OpenAPI's example, serving.openapi) are validation rows: real
rows the model was judged on, never rows it was fitted on."""

from __future__ import annotations

import pandas as pd

from foundation.specs.model import ModelSpec
from mlops.training import model_inputs, train_and_evaluate
from tests.mlops.conftest import spec_dict, synthetic_features


def test_the_input_example_is_the_first_validation_rows() -> None:
    frame = synthetic_features(trucks=4, days=30)
    frame = frame[frame["label_complete"]].reset_index(drop=True)
    candidate = {"name": "logistic_regression", "estimator": "logistic_regression", "params": {}}
    spec = ModelSpec.model_validate(spec_dict(candidates=[candidate]))
    result = train_and_evaluate(frame, spec)
    validation = model_inputs(frame[result.split.validation], result.features).head(5)
    training_days = set(frame.loc[result.split.train, "date_day"])
    assert len(result.input_example) == 5
    pd.testing.assert_frame_equal(result.input_example, validation)
    assert not set(frame.loc[result.input_example.index, "date_day"]) & training_days
