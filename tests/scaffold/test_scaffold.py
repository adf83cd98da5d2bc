"""`foundation init` and `foundation usecase new|list` on real folders: what is written, what check says, bad input."""

from __future__ import annotations

import importlib.metadata
import json
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.workspace import WORKSPACE_ENV, Workspace
from foundation.platform.check import check_workspace
from foundation.platform.todos import todo_lines
from foundation.scaffold.render import ScaffoldError, UsecaseAnswers, usecase_files
from foundation.specs.model import ESTIMATORS, ModelSpec

runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_workspace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # `--workspace` sets FOUNDATION_WORKSPACE in this process; monkeypatch puts it back after each test.
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)


def _init(folder: Path, *args: str) -> Path:
    result = runner.invoke(app, ["init", str(folder), *args])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def platform(tmp_path: Path) -> Path:
    return _init(tmp_path / "platform")


def _new(root: Path, *args: str) -> object:
    return runner.invoke(app, ["--workspace", str(root), "usecase", "new", *args])


def _answers(**overrides: object) -> UsecaseAnswers:
    values = {"name": "churn", "type": "prediction", "owner": "crm@example.com", "question": "Who leaves next month?"}
    return UsecaseAnswers(**{**values, **overrides})  # type: ignore[arg-type]


# -- pure rendering ------------------------------------------------------------------------------------------------


def test_a_prediction_skeleton_has_a_model_spec_with_the_baseline_and_four_candidates() -> None:
    files = usecase_files(_answers())
    spec = ModelSpec.model_validate(yaml.safe_load(files["usecases/churn/ml/prediction.yaml"]))
    assert spec.baseline.name == "As is"
    assert sorted(c.estimator for c in spec.candidates) == sorted(ESTIMATORS)
    assert spec.feature_table == "fct_churn"
    assert "{{ source('churn', 'records') }}" in files["dbt_project/models/churn/staging/stg_churn__records.sql"]
    assert "{{ ref('stg_churn__records') }}" in files["dbt_project/models/churn/marts/fct_churn.sql"]


@pytest.mark.parametrize("kind", ["visualisation", "monitoring", "optimisation", "automation"])
def test_other_types_get_no_model_spec(kind: str) -> None:
    files = usecase_files(_answers(type=kind))
    assert not [p for p in files if "/ml/" in p]
    assert yaml.safe_load(files["usecases/churn/usecase.yaml"])["type"] == kind


def test_answers_with_quotes_and_colons_stay_valid_yaml() -> None:
    files = usecase_files(_answers(question='Which "key" accounts: churn?', users=["sales: EMEA", "ops"]))
    sheet = yaml.safe_load(files["usecases/churn/usecase.yaml"])
    assert sheet["description"] == 'Which "key" accounts: churn?'
    assert sheet["users"] == ["sales: EMEA", "ops"]


@pytest.mark.parametrize("name", ["Churn", "churn-2", "2churn", "churn__v2", "", "a" * 64])
def test_a_name_that_is_not_an_identifier_is_refused(name: str) -> None:
    with pytest.raises(ScaffoldError, match="not an identifier"):
        usecase_files(_answers(name=name))


def test_unknown_type_and_bad_owner_are_refused() -> None:
    with pytest.raises(ScaffoldError, match=r"unknown use-case type 'dashboard'.*visualisation"):
        usecase_files(_answers(type="dashboard"))
    with pytest.raises(ScaffoldError, match="owner 'bob' is not an e-mail"):
        usecase_files(_answers(owner="bob"))


def test_todo_lines_name_the_line_and_the_ask() -> None:
    assert todo_lines("a: 1\nb: 2   # TODO: the label column\n# nothing\n-- TODO\n") == [
        (2, "the label column"),
        (4, "fill this in"),
    ]


# -- foundation init ------------------------------------------------------------------------------------------------


def test_init_framework_path_takes_the_framework_from_a_checkout(tmp_path: Path) -> None:
    checkout = Path(__file__).resolve().parents[2]
    root = _init(tmp_path / "dev", "--framework-path", str(checkout))
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["tool"]["uv"]["sources"]["data-foundation"] == {"path": str(checkout), "editable": True}
    assert pyproject["project"]["dependencies"][0].startswith("data-foundation~=")
    refused = runner.invoke(app, ["init", str(tmp_path / "other"), "--framework-path", str(tmp_path / "dev/usecases")])
    assert refused.exit_code == 2 and "not a Data Foundation checkout" in refused.stderr


def test_init_writes_a_platform_that_depends_on_the_framework(platform: Path) -> None:
    for relative in (
        "foundation.yaml",
        ".gitignore",
        "README.md",
        "definitions.py",
        "pyproject.toml",
        ".github/workflows/ci.yml",
        "dbt_project/dbt_project.yml",
        "usecases/equipment_failure/data/pump_readings.csv",
    ):
        assert (platform / relative).is_file(), relative
    pyproject = tomllib.loads((platform / "pyproject.toml").read_text())
    # by name and version, so that the platform's own CI installs it from the index (not a path on this machine)
    assert pyproject["project"]["dependencies"] == [f"data-foundation~={importlib.metadata.version('data-foundation')}"]
    assert "sources" not in pyproject["tool"]["uv"]
    assert not (platform / "foundation").exists(), "the framework is a dependency, never copied"
    ci = yaml.safe_load((platform / ".github/workflows/ci.yml").read_text())
    steps = " ".join(str(s.get("run", "")) for s in ci["jobs"]["validate"]["steps"])
    for command in ("ruff check", "foundation check --profile production", "prepare_project", "pytest"):
        assert command in steps
    assert ci["jobs"]["image"]["steps"][-1]["with"]["file"] == "infra/docker/Dockerfile"
    assert (platform / "infra/docker/Dockerfile").is_file()


def test_a_new_platform_passes_check_with_no_warning(platform: Path) -> None:
    errors = check_workspace(Workspace.open(platform))
    assert errors == [], [e.format() for e in errors]


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not empty" in result.output and "--force" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_init_force_never_overwrites_a_users_file(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("my own readme\n")
    (tmp_path / "foundation.yaml").write_text("state_dir: .mystate\n")
    result = runner.invoke(app, ["init", str(tmp_path), "--force", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["data"]
    assert sorted(report["kept"]) == ["README.md", "foundation.yaml"]
    assert "definitions.py" in report["written"]
    assert (tmp_path / "README.md").read_text() == "my own readme\n"
    assert (tmp_path / "foundation.yaml").read_text() == "state_dir: .mystate\n"


# -- foundation usecase new / list ------------------------------------------------------------------------------


def test_a_fresh_skeleton_passes_check_and_lists_its_todos(platform: Path) -> None:
    result = _new(platform, "churn", "--type", "prediction", "--owner", "crm@example.com", "--no-input")
    assert result.exit_code == 0, result.output
    errors = check_workspace(Workspace.open(platform))
    assert [e.format() for e in errors if e.severity == "error"] == []
    warnings = [e for e in errors if e.severity == "warning"]
    todo_files = {e.path.relative_to(platform).as_posix() for e in warnings if e.field == "TODO"}
    assert {
        "usecases/churn/usecase.yaml",  # no question given, no sponsor
        "usecases/churn/sources/records.yaml",
        "usecases/churn/kpis/churn_rows.yaml",
        "usecases/churn/ml/prediction.yaml",
        "dbt_project/models/churn/marts/fct_churn.sql",
    } <= todo_files
    sheet = [e for e in warnings if e.field == "qualification"]
    assert len(sheet) == 1 and "20 unrated" in sheet[0].message and "value.strategic_alignment" in sheet[0].message
    check = runner.invoke(app, ["--workspace", str(platform), "check"])
    assert check.exit_code == 0, check.output


def test_usecase_new_asks_what_the_flags_do_not_give(platform: Path) -> None:
    answers = "monitoring\nops@example.com\nboss@example.com\nplanners, drivers\nAre the pumps healthy right now?\n"
    result = runner.invoke(app, ["--workspace", str(platform), "usecase", "new", "pump_health"], input=answers)
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load((platform / "usecases/pump_health/usecase.yaml").read_text())
    assert spec["type"] == "monitoring"
    assert spec["owner"] == "ops@example.com" and spec["sponsor"] == "boss@example.com"
    assert spec["users"] == ["planners", "drivers"]
    assert spec["description"] == "Are the pumps healthy right now?"
    assert not (platform / "usecases/pump_health/ml").exists()


def test_usecase_new_refuses_a_duplicate_and_a_bad_name(platform: Path) -> None:
    result = _new(platform, "equipment_failure", "--owner", "a@example.com", "--no-input")
    assert result.exit_code == 2
    assert "'equipment_failure' already exists" in result.output
    result = _new(platform, "Pump-Health", "--owner", "a@example.com", "--no-input")
    assert result.exit_code == 2
    assert "not an identifier" in result.output and "pump_health" in result.output
    assert not (platform / "usecases/Pump-Health").exists()


def test_usecase_new_without_owner_and_no_input_says_what_is_missing(platform: Path) -> None:
    result = _new(platform, "churn", "--no-input")
    assert result.exit_code == 2
    assert "--owner is required" in result.output
    assert not (platform / "usecases/churn").exists()


def test_usecase_new_refuses_dbt_files_that_exist(platform: Path) -> None:
    mine = platform / "dbt_project/models/churn/marts/fct_churn.sql"
    mine.parent.mkdir(parents=True)
    mine.write_text("select 1 as mine\n")
    result = _new(platform, "churn", "--owner", "a@example.com", "--no-input")
    assert result.exit_code == 2 and "fct_churn.sql" in result.output
    assert mine.read_text() == "select 1 as mine\n"
    assert not (platform / "usecases/churn").exists()


def test_usecase_list_json(platform: Path) -> None:
    assert _new(platform, "churn", "--owner", "crm@example.com", "--type", "automation", "--no-input").exit_code == 0
    result = runner.invoke(app, ["--workspace", str(platform), "usecase", "list", "--json"])
    assert result.exit_code == 0, result.output
    items = {i["name"]: i for i in json.loads(result.output)["data"]}
    assert items["churn"]["type"] == "automation" and items["churn"]["quadrant"] == "unscored"
    assert items["churn"]["owner"] == "crm@example.com"
    assert items["equipment_failure"]["quadrant"] == "quick wins"
    assert items["equipment_failure"]["phase"] == "ideation"  # nothing landed yet
