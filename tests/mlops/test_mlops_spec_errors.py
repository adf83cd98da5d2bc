"""A model spec with an unknown feature, a missing target or a candidate class that does not exist fails
`foundation check` with `file:line: field: message (hint)`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from foundation.cli.main import app
from mlops.feature_table_checks import check_model_specs
from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features


def _errors(kit: MlWorkspace) -> list[str]:
    return [e.format(relative_to=kit.root) for e in check_model_specs(kit.workspace) if e.severity == "error"]


def test_the_shipped_style_spec_is_valid(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    ml_workspace.write_spec(spec_dict())
    assert _errors(ml_workspace) == []


def test_unknown_feature(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    spec = spec_dict(features={"include": ["temp", "vibraton"]})
    ml_workspace.write_spec(spec)
    (error,) = _errors(ml_workspace)
    line = ml_workspace.write_spec(spec).read_text().splitlines().index("  - vibraton") + 1
    assert error.startswith(f"usecases/fleet/ml/risk.yaml:{line}: features.include.1: unknown feature 'vibraton'")
    assert "did you mean 'vibration'?" in error


def test_unknown_unit_column_of_a_group_split(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    ml_workspace.write_spec(spec_dict(split={"by": "group", "group": "truck"}))
    (error,) = _errors(ml_workspace)
    assert "split.group: unknown unit column 'truck'" in error and "did you mean 'truck_id'?" in error


def test_missing_target(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    spec = spec_dict()
    del spec["target"]
    ml_workspace.write_spec(spec)
    (error,) = _errors(ml_workspace)
    assert error.startswith("usecases/fleet/ml/risk.yaml:1: target: required field is missing")
    assert "add `target:`" in error and "docs/mlops.md" in error


def test_target_that_is_not_a_column(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    ml_workspace.write_spec(spec_dict(target="failure_son"))
    (error,) = _errors(ml_workspace)
    assert ": target: unknown target 'failure_son'" in error and "did you mean 'failure_soon'?" in error


def test_candidate_class_that_does_not_exist(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    spec = spec_dict()
    spec["candidates"][1] = {"name": "forest", "estimator": "sklearn.ensemble.RandomForrestClassifier"}
    spec["candidates"][2] = {"name": "nope", "estimator": "sklearnx.trees.Tree"}
    spec["candidates"][3] = {"name": "typo", "estimator": "random_forest", "params": {"n_estimator": 3}}
    path = ml_workspace.write_spec(spec)
    errors = _errors(ml_workspace)
    lines = path.read_text().splitlines()
    forest_line = next(i for i, text in enumerate(lines, 1) if "RandomForrestClassifier" in text)
    assert errors[0] == (
        f"usecases/fleet/ml/risk.yaml:{forest_line}: candidates[1].estimator: candidate class "
        "'sklearn.ensemble.RandomForrestClassifier' does not exist: sklearn.ensemble has no 'RandomForrestClassifier' "
        "(hint: did you mean sklearn.ensemble.RandomForestClassifier?)"
    )
    assert "cannot import module 'sklearnx.trees'" in errors[1]
    assert "has no hyper-parameter 'n_estimator'" in errors[2] and "did you mean 'n_estimators'?" in errors[2]


def test_unknown_estimator_shortcut_and_baseline_column(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    spec = spec_dict(baseline={"rule": "tmp > 97"})
    spec["candidates"][0]["estimator"] = "random_forrest"
    ml_workspace.write_spec(spec)
    errors = _errors(ml_workspace)
    assert any("candidates.0.estimator" in e or "candidates[0].estimator" in e for e in errors), errors
    ml_workspace.write_spec(spec_dict(baseline={"rule": "tmp > 97"}))
    (error,) = _errors(ml_workspace)
    assert "baseline.rule: the expression does not bind" in error and "tmp" in error


def test_feature_table_that_is_not_a_model(ml_workspace: MlWorkspace) -> None:
    ml_workspace.write_spec(spec_dict(feature_table="features_dya"))
    (error,) = _errors(ml_workspace)
    assert "feature_table: no dbt model named 'features_dya'" in error


def test_foundation_check_reports_them_and_exits_1(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    ml_workspace.write_spec(spec_dict(features={"include": ["temperature"]}))
    result = CliRunner().invoke(app, ["--workspace", str(ml_workspace.root), "check", "--json"])
    assert result.exit_code == 1, result.output
    errors = json.loads(result.stdout)["errors"]
    assert any(e["field"] == "features.include.0" and e["line"] and "unknown feature" in e["message"] for e in errors)
