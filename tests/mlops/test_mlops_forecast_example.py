"""The shipped forecasting example (examples/claims_forecast: weekly claims per centre), end to end on a workspace
of its own: ingestion of its CSV, dbt with the lag and rolling macros, a regression trained on a rolling-origin
backtest against last week's value, registered, and every feature row scored with a number. Real dbt, DuckDB,
Delta and MLflow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from foundation.core.workspace import Workspace, load_model_specs
from foundation.engine.lakehouse.catalog import delta_relation_sql
from mlops.inference import predictions_uri

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "claims_forecast"


def example_workspace(root: Path) -> Path:
    """The repository's settings and dbt project (its macros; no use case of its own), then the example's files."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "foundation.yaml", root / "foundation.yaml")
    (root / "dbt_project" / "models").mkdir(parents=True)
    shutil.copy(REPO / "dbt_project" / "dbt_project.yml", root / "dbt_project" / "dbt_project.yml")
    shutil.copytree(REPO / "dbt_project" / "macros", root / "dbt_project" / "macros")
    shutil.copytree(EXAMPLE / "usecases", root / "usecases")
    shutil.copytree(EXAMPLE / "dbt_project" / "models", root / "dbt_project" / "models", dirs_exist_ok=True)
    return root


def test_the_claims_forecast_example_end_to_end(tmp_path: Path) -> None:
    root = example_workspace(tmp_path / "ws")
    run = subprocess.run(
        [sys.executable, "-m", "foundation.cli.main", "--workspace", str(root), "run", "claims_forecast", "--json"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(
        (root / ".foundation" / "ml" / "claims_forecast__weekly_claims" / "training_report.json").read_text()
    )
    comparison = report["comparison"]
    assert report["task"] == "regression" and report["split"]["folds"] == 4
    assert "rolling-origin backtest, 4 windows" in report["title"]
    last_week = comparison["Last week"]["mae"]
    winner = comparison[report["winner"]]["mae"]
    assert winner == min(c["mae"] for c in comparison.values())
    assert winner <= last_week - 1 and report["registered_version"] == 1  # the gate: a claim a week better, at least
    assert all(c["fold_spread"]["mae"][1] >= 0 for c in comparison.values())  # each metric's spread over the windows

    workspace = Workspace.open(root)
    ref = next(r for r in load_model_specs(root).models if r.key == "claims_forecast/weekly_claims")
    con = duckdb.connect()
    scored = con.execute(
        f"select count(*), count(distinct centre), min(score), max(score), count(label) "
        f"from {delta_relation_sql(con, predictions_uri(workspace, ref))}"
    ).fetchall()[0]
    con.close()
    assert scored[0] == 3 * 156 and scored[1] == 3  # every centre-week, once
    assert 100 < scored[2] < scored[3] < 1000 and scored[4] == 0  # claims per week, not probabilities; no label
