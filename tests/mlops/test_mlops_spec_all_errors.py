"""`foundation check` lists every mistake of a model spec at once: a refused part (a misspelt key, a bad value, a
missing field) no longer hides what the data model would reject (a baseline rule column, an unknown feature, a
candidate class that does not exist)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.specs.model import salvage_model_spec
from mlops.feature_table_checks import check_model_specs
from tests.mlops.conftest import MlWorkspace, spec_dict, synthetic_features


def _line(path_text: str, needle: str) -> int:
    return next(i for i, text in enumerate(path_text.splitlines(), 1) if needle in text)


def _three_mistakes() -> dict:
    spec = spec_dict(baseline={"rule": "tmp > 97"}, features={"include": ["temp", "vibraton"]})
    spec["treshold"] = 0.4  # misspelt key: refused by the format
    spec["candidates"][1] = {"name": "forest", "estimator": "sklearn.ensemble.RandomForrestClassifier"}
    return spec


def test_three_mistakes_in_one_spec_are_reported_together(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    spec = _three_mistakes()
    text = ml_workspace.write_spec(spec).read_text()
    errors = [e.format(relative_to=ml_workspace.root) for e in check_model_specs(ml_workspace.workspace)]
    where = "usecases/fleet/ml/risk.yaml"
    assert errors[0] == (
        f"{where}:{_line(text, 'treshold')}: treshold: unknown key 'treshold' (hint: did you mean 'threshold'?)"
    )
    rest = "\n".join(errors[1:])
    assert f"{where}:{_line(text, 'RandomForrest')}: candidates[1].estimator: candidate class" in rest
    assert "did you mean sklearn.ensemble.RandomForestClassifier?" in rest
    assert f"{where}:{_line(text, 'tmp > 97')}: baseline.rule: the expression does not bind" in rest
    assert f"{where}:{_line(text, '- vibraton')}: features.include.1: unknown feature 'vibraton'" in rest
    assert len(errors) == 4, errors


def test_a_missing_required_field_does_not_hide_the_others(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    spec = spec_dict(baseline={"rule": "tmp > 97"}, threshold=3)
    del spec["target"]
    ml_workspace.write_spec(spec)
    fields = [e.field for e in check_model_specs(ml_workspace.workspace)]
    # the stand-in target is not reported as an unknown column; the refused threshold is not checked twice
    assert sorted(fields) == ["baseline.rule", "target", "threshold"], fields


def test_foundation_check_json_lists_all_three(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    ml_workspace.write_spec(_three_mistakes())
    result = CliRunner().invoke(app, ["--workspace", str(ml_workspace.root), "check", "--json"])
    assert result.exit_code == 1, result.output
    fields = {e["field"] for e in json.loads(result.stdout)["errors"]}
    assert {"treshold", "candidates[1].estimator", "baseline.rule", "features.include.1"} <= fields


def test_salvage_drops_refused_parts_and_keeps_the_rest() -> None:
    spec = _three_mistakes()
    spec["split"] = {"by": "random", "group": "truck_id"}  # a rule of the split section: it falls back to its default
    rest = salvage_model_spec(spec)
    assert rest is not None and rest.stand_ins == frozenset()
    assert rest.spec.baseline.rule == "tmp > 97" and rest.spec.split.group is None
    assert [c.name for c in rest.spec.candidates] == ["random_forest", "forest", "decision_tree", "gradient_boosting"]
    assert salvage_model_spec(["not", "a", "mapping"]) is None


def test_a_refused_candidate_keeps_the_others_on_their_own_lines(ml_workspace: MlWorkspace) -> None:
    ml_workspace.publish(synthetic_features(trucks=2, days=10))
    spec = spec_dict()
    spec["candidates"][0]["estimator"] = "random_forrest"  # refused by the format
    spec["candidates"][2] = {"name": "tree", "estimator": "decision_tree", "params": {"max_dept": 3}}
    text = ml_workspace.write_spec(spec).read_text()
    errors = [e.format(relative_to=ml_workspace.root) for e in check_model_specs(ml_workspace.workspace)]
    assert len(errors) == 2, errors
    assert errors[0].startswith(f"usecases/fleet/ml/risk.yaml:{_line(text, 'random_forrest')}: candidates[0].estimator")
    assert errors[1].startswith(
        f"usecases/fleet/ml/risk.yaml:{_line(text, 'max_dept:')}: candidates[2].params.max_dept"
    )
