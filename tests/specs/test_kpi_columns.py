"""A KPI expression or filter on a column its model does not have is caught by `foundation check`, with the KPI file
and line, instead of failing at `run`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.workspace import load_kpis
from foundation.engine.dbt.static_validation import check_kpi_models
from foundation.specs.kpi_columns import kpi_column_errors

REPO = Path(__file__).resolve().parents[2]
COLUMNS = {"day", "failures", "operating_hours", "segment"}
KPI = """id: failure_rate
label: Failure rate
description: Failures per operating hour
owner: fleet@example.com
unit: per h
direction: lower
model: fct_day
time: day
expression: {expression}
"""


def kpi_errors(tmp_path: Path, expression: str, extra: str = "", columns: set[str] = COLUMNS) -> list[str]:
    folder = tmp_path / "usecases" / "fleet" / "kpis"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "failure_rate.yaml").write_text(KPI.format(expression=expression) + extra, encoding="utf-8")
    scan = load_kpis(tmp_path)
    assert scan.ok, scan.errors
    (kpi,) = scan.kpis
    return [e.format(relative_to=tmp_path) for e in kpi_column_errors(kpi, columns)]


def test_an_expression_on_the_model_columns_passes(tmp_path: Path) -> None:
    expression = "sum(failures) filter (where segment <> 'x') / nullif(sum(operating_hours), 0)"
    assert kpi_errors(tmp_path, expression) == []


def test_a_misspelt_column_is_named_with_the_line_and_the_closest_column(tmp_path: Path) -> None:
    assert kpi_errors(tmp_path, "sum(failures) / sum(operating_hour)") == [
        "usecases/fleet/kpis/failure_rate.yaml:9: expression: model 'fct_day' has no column 'operating_hour' "
        "(hint: did you mean 'operating_hours'?)"
    ]


def test_the_filter_is_checked_too_and_names_are_case_insensitive(tmp_path: Path) -> None:
    errors = kpi_errors(tmp_path, "sum(FAILURES)", extra="filter: t.Segment = 'a' and km > 0\n")
    assert errors == [
        "usecases/fleet/kpis/failure_rate.yaml:10: filter: model 'fct_day' has no column 'km' "
        "(hint: use one of its documented columns: day, failures, operating_hours, segment)"
    ]


def test_lambda_parameters_are_not_columns(tmp_path: Path) -> None:
    assert kpi_errors(tmp_path, "sum(list_sum(list_transform([failures], x -> x * 2)))") == []


def test_sql_that_does_not_parse_says_how_it_was_read(tmp_path: Path) -> None:
    (error,) = kpi_errors(tmp_path, "sum(failures")
    assert error.startswith("usecases/fleet/kpis/failure_rate.yaml:9: expression: not valid SQL: syntax error")
    assert "(read as: select sum(failures from t)" in error


def test_an_undocumented_model_is_left_to_dbt(tmp_path: Path) -> None:
    folder = tmp_path / "usecases" / "fleet" / "kpis"
    folder.mkdir(parents=True)
    (folder / "failure_rate.yaml").write_text(KPI.format(expression="sum(nope)"), encoding="utf-8")
    kpis = load_kpis(tmp_path).kpis
    assert check_kpi_models(kpis, {"fct_day": set()}) == []
    (error,) = check_kpi_models(kpis, {"fct_day": COLUMNS})
    assert (error.field, error.message) == ("expression", "model 'fct_day' has no column 'nope'")


def test_foundation_check_reports_a_kpi_on_a_missing_column(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(REPO / "foundation.yaml", root / "foundation.yaml")
    shutil.copytree(REPO / "dbt_project", root / "dbt_project", ignore=shutil.ignore_patterns("target", "logs"))
    shutil.copytree(REPO / "usecases", root / "usecases", ignore=shutil.ignore_patterns("data"))
    path = root / "usecases" / "fleet_maintenance" / "kpis" / "fleet_availability.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("sum(calendar_hours)", "sum(calender_hours)"), encoding="utf-8")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), start=1) if t.startswith("expression:"))

    result = CliRunner().invoke(app, ["--workspace", str(root), "check", "--json"])
    assert result.exit_code == 1, result.output
    errors = [e for e in json.loads(result.stdout)["errors"] if e["severity"] == "error"]
    assert [(Path(e["path"]).name, e["line"], e["field"], e["message"], e["hint"]) for e in errors] == [
        (
            "fleet_availability.yaml",
            line,
            "expression",
            "model 'fct_truck_day' has no column 'calender_hours'",
            "did you mean 'calendar_hours'?",
        )
    ]
