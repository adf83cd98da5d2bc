"""Evaluation scores do not depend on thread timing: a forest with n_jobs > 1 is scored on one job, in tree order."""

from __future__ import annotations

import numpy as np

from foundation.specs.model import CandidateSpec
from mlops.training import build_pipeline, model_inputs, reproducible_scores
from tests.mlops.conftest import synthetic_features


def test_forest_scores_are_summed_in_tree_order_and_n_jobs_is_restored() -> None:
    frame = synthetic_features(trucks=6, days=30)
    inputs = model_inputs(frame, ["truck_type", "temp", "vibration", "hours"])
    candidate = CandidateSpec.model_validate(
        {"name": "random_forest", "estimator": "random_forest", "params": {"n_estimators": 25, "n_jobs": 2}}
    )
    pipeline = build_pipeline(candidate, inputs, seed=7).fit(inputs, frame["failure_soon"])
    scores = reproducible_scores(pipeline, inputs)

    forest = pipeline[-1]
    matrix = pipeline[:-1].transform(inputs)
    positive = list(forest.classes_).index(True)
    ordered = np.zeros((len(inputs), len(forest.classes_)))
    for tree in forest.estimators_:  # what a single job does: add each tree's probabilities, first to last
        ordered += tree.predict_proba(matrix)
    np.testing.assert_array_equal(scores, (ordered / len(forest.estimators_))[:, positive])
    assert forest.n_jobs == 2  # batch scoring keeps its jobs
