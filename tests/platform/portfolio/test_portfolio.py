"""Qualification scores, quadrants, phases, the matrix PNG, the page, `foundation portfolio` and the API route."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.settings import PortfolioSettings
from foundation.core.settings_profiles import load_settings
from foundation.core.workspace import WORKSPACE_ENV, Workspace
from foundation.platform.portfolio.matrix import matrix_png
from foundation.platform.portfolio.page import portfolio_html
from foundation.platform.portfolio.phase import Evidence, phase_of
from foundation.platform.portfolio.report import build_portfolio
from foundation.platform.portfolio.scoring import quadrant, score_sheet, weighted_score
from foundation.specs.usecase import QualificationSheet

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sheet(value: str, complexity: str) -> dict:
    return {
        "value": dict.fromkeys(
            [
                "strategic_alignment",
                "financial_value",
                "contribution_to_other_projects",
                "reuse_of_data_and_algorithms",
            ],
            value,
        ),
        "complexity": {
            "data": dict.fromkeys(["quality_effort", "accessibility_effort", "novelty"], complexity),
            "ethics_csr": dict.fromkeys(["privacy_risk", "algorithmic_bias", "explainability", "energy"], complexity),
            "organisation": dict.fromkeys(
                ["actors_to_align", "business_complexity", "interdependencies", "sponsorship", "business_maturity"],
                complexity,
            ),
            "technical": dict.fromkeys(["data_science", "devops_mlops", "security", "sla"], complexity),
        },
    }


@pytest.fixture(autouse=True)
def _restore_workspace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)


@pytest.fixture
def platform(tmp_path: Path) -> Path:
    folder = tmp_path / "platform"
    assert runner.invoke(app, ["init", str(folder)]).exit_code == 0
    return folder


def add_usecase(root: Path, name: str, qualification: dict | None) -> None:
    folder = root / "usecases" / name
    folder.mkdir(parents=True)
    spec = {"title": name.title(), "description": f"The {name} use case, for tests", "owner": "x@example.com"}
    if qualification is not None:
        spec["qualification"] = qualification
    (folder / "usecase.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")


# -- scoring ---------------------------------------------------------------------------------------------------


def test_weighted_score_is_the_weighted_mean_on_0_to_100() -> None:
    assert weighted_score({"a": "low", "b": "high"}, {"a": 1, "b": 1}) == 50.0
    assert weighted_score({"a": "low", "b": "high"}, {"a": 1, "b": 3}) == 75.0
    assert weighted_score({"a": "medium"}, {"a": 2}) == 50.0
    assert weighted_score({"a": "low"}, {"a": 0}) == 0.0


@pytest.mark.parametrize(
    ("value", "complexity", "expected"),
    [(80, 20, "quick wins"), (80, 50, "strategic bets"), (49.9, 10, "low-hanging fruit"), (10, 90, "to avoid")],
)
def test_quadrants_split_at_the_threshold(value: float, complexity: float, expected: str) -> None:
    assert quadrant(value, complexity, 50) == expected


def test_levels_are_case_insensitive_and_a_bad_level_is_an_error() -> None:
    parsed = QualificationSheet.model_validate({"value": {"financial_value": "High"}})
    assert parsed.value.financial_value == "high"
    with pytest.raises(ValueError, match="financial_value"):
        QualificationSheet.model_validate({"value": {"financial_value": "huge"}})
    with pytest.raises(ValueError, match="money"):
        QualificationSheet.model_validate({"value": {"money": "high"}})


def test_an_incomplete_sheet_is_unscored_and_says_what_is_missing() -> None:
    data = sheet("high", "low")
    del data["complexity"]["technical"]["sla"]
    data["value"]["financial_value"] = None
    scores = score_sheet(QualificationSheet.model_validate(data), PortfolioSettings())
    assert scores.quadrant == "unscored" and scores.value is None
    assert scores.missing == ["value.financial_value", "complexity.technical.sla"]
    assert score_sheet(None, PortfolioSettings()).missing == ["qualification (the whole sheet)"]


def test_weights_and_threshold_come_from_settings_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = sheet("high", "low")
    data["value"]["financial_value"] = "low"
    parsed = QualificationSheet.model_validate(data)
    assert score_sheet(parsed, PortfolioSettings()).value == pytest.approx(100 * 4 / 6, abs=0.1)
    (tmp_path / "foundation.yaml").write_text("portfolio:\n  value_weights: {financial_value: 0}\n")
    assert score_sheet(parsed, load_settings(tmp_path).portfolio).value == 100.0
    monkeypatch.setenv("FOUNDATION_PORTFOLIO__THRESHOLD", "100.5")
    with pytest.raises(ValueError, match="threshold"):
        load_settings(tmp_path)
    monkeypatch.setenv("FOUNDATION_PORTFOLIO__THRESHOLD", "90")
    monkeypatch.setenv("FOUNDATION_PORTFOLIO__VALUE_WEIGHTS__FINANCIAL_VALUE", "4")
    settings = load_settings(tmp_path).portfolio
    scores = score_sheet(parsed, settings)
    assert scores.value == pytest.approx(100 * 4 / 8) and scores.quadrant == "low-hanging fruit"


# -- phases ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (Evidence(sources=1), "ideation"),
        (Evidence(sources=1, sources_landed=1), "sprint0"),
        (Evidence(sources=1, sources_landed=1, models_built=3, model_specs=1), "development"),
        (Evidence(sources=1, sources_landed=1, models_built=3, model_specs=1, champions=1), "development"),
        (Evidence(sources_landed=1, models_built=3, model_specs=1, champions=1, schedules=["a"]), "industrialisation"),
        (Evidence(sources_landed=1, models_built=3, schedules=["a"]), "industrialisation"),
        (Evidence(sources_landed=1, models_built=3, schedules=["a"], schedules_running=["a"]), "run"),
    ],
)
def test_phase_rule(evidence: Evidence, expected: str) -> None:
    assert phase_of(evidence) == expected


# -- the portfolio of a workspace ----------------------------------------------------------------------------------


def test_portfolio_ranks_quadrants_then_unscored(platform: Path) -> None:
    add_usecase(platform, "bet", sheet("high", "high"))
    add_usecase(platform, "avoid", sheet("low", "high"))
    add_usecase(platform, "idea", None)
    entries = build_portfolio(Workspace.open(platform))
    assert [(e.name, e.scores.quadrant) for e in entries] == [
        ("equipment_failure", "quick wins"),
        ("bet", "strategic bets"),
        ("avoid", "to avoid"),
        ("idea", "unscored"),
    ]
    assert {e.phase for e in entries} == {"ideation"}


def test_matrix_png_and_page(platform: Path) -> None:
    add_usecase(platform, "idea", None)
    entries = build_portfolio(Workspace.open(platform))
    png = matrix_png(entries, 50)
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    page = portfolio_html(entries, png, 50)
    assert "data:image/png;base64," in page
    assert "equipment_failure" in page and "quick wins" in page
    assert "to rate: qualification (the whole sheet)" in page


def test_portfolio_command_json_and_out(platform: Path, tmp_path: Path) -> None:
    add_usecase(platform, "idea", None)
    add_usecase(platform, "half", {"value": {"financial_value": "high"}})
    out = tmp_path / "report"
    result = runner.invoke(app, ["--workspace", str(platform), "portfolio", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["data"]
    assert [u["name"] for u in report["usecases"]] == ["equipment_failure", "half", "idea"]
    assert report["usecases"][0]["value"] == pytest.approx(66.7)
    assert (out / "portfolio.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "equipment_failure" in (out / "portfolio.html").read_text()
    table = runner.invoke(app, ["--workspace", str(platform), "portfolio"])
    assert table.exit_code == 0 and "quick wins" in table.output
    assert "(19 criteria to rate)" in table.output and "(no sheet)" in table.output


def test_the_api_serves_the_portfolio_behind_its_keys(platform: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.app import create_app

    monkeypatch.setenv("FOUNDATION_API_KEYS", "secret-key")
    with TestClient(create_app(platform)) as client:
        assert client.get("/portfolio").status_code == 401
        assert client.get("/v1/portfolio").status_code == 401
        page = client.get("/portfolio", headers={"X-API-Key": "secret-key"})
        assert page.status_code == 200 and "equipment_failure" in page.text
        data = client.get("/v1/portfolio", headers={"Authorization": "Bearer secret-key"}).json()
        assert data["usecases"][0]["quadrant"] == "quick wins"
        add_usecase(platform, "idea", None)  # a new use case shows without a restart
        data = client.get("/v1/portfolio", headers={"X-API-Key": "secret-key"}).json()
        assert [u["name"] for u in data["usecases"]] == ["equipment_failure", "idea"]
        png = client.get("/portfolio/matrix.png", headers={"X-API-Key": "secret-key"})
        assert png.headers["content-type"] == "image/png" and png.content.startswith(PNG_SIGNATURE)


@pytest.mark.slow
def test_phase_follows_the_data_landed(platform: Path) -> None:
    result = runner.invoke(app, ["--workspace", str(platform), "ingest", "equipment_failure"])
    assert result.exit_code == 0, result.output
    entry = build_portfolio(Workspace.open(platform))[0]
    assert (entry.name, entry.phase, entry.evidence.sources_landed) == ("equipment_failure", "sprint0", 1)
