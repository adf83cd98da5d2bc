"""The demo's outputs read with the tools people already use (issue 18): the example notebook run by a Jupyter kernel,
`foundation sql` over gold and ml, and `dagster dev -f definitions.py` on the workspace's instance.

One demo build (4 trucks, 14 days) serves every test of the module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.engine.dbt.conftest import REPO, copy_platform

pytestmark = pytest.mark.slow
NOTEBOOK = REPO / "docs" / "notebooks" / "read_tables.ipynb"


def foundation(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "foundation.cli.main", "--workspace", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


# A KPI without a time column (one value per refresh) on the AI4I runs, which have no timestamps of their own.
KPI_WITHOUT_TIME = """\
id: mean_tool_wear
label: Mean tool wear
description: Mean tool wear of the runs, at each refresh.
owner: plant-analytics@example.com
unit: min
direction: lower
target: 120
dimensions: [product_type]
model: fct_product_runs
expression: avg(tool_wear_min)
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_platform(tmp_path_factory.mktemp("tools") / "ws")
    (root / "usecases" / "machine_failure" / "kpis" / "mean_tool_wear.yaml").write_text(KPI_WITHOUT_TIME)
    built = foundation(root, "demo", "--trucks", "4", "--days", "14", "--json")
    assert built.returncode == 0, built.stderr[-3000:]
    return root


def test_the_example_notebook_runs_against_the_demo(demo: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "FOUNDATION_WORKSPACE"}
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(demo)}})
    client.km = client.kernel_manager_class(kernel_name="python3")  # a kernel of this venv's Python
    client.execute(env=env)  # a failing cell raises CellExecutionError with its traceback
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "scored runs" in printed and "failure_rate" in printed


def test_sql_reads_gold_and_ml(demo: Path) -> None:
    query = (
        "select (select count(*) from gold.fleet_maintenance__fct_truck_day) as truck_days,"
        " (select count(*) from ml.machine_failure__machine_failure__predictions) as predictions,"
        " (select count(*) from ml.machine_failure__machine_failure__training_set) as training_rows,"
        " (select count(*) from ml.promotions where action = 'promote') as promotions"
    )
    result = foundation(demo, "sql", query, "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["data"]
    assert row["truck_days"] == 4 * 14 and row["predictions"] == 10_000 and row["promotions"] >= 1
    assert 0 < row["training_rows"] <= 10_000


def test_dagster_dev_opens_the_instance_the_cli_recorded_its_runs_in(demo: Path) -> None:
    """What `dagster dev` does first, from the workspace folder with no DAGSTER_HOME set: choose its instance."""
    probe = (
        "import logging, json\n"
        "from dagster._cli.utils import get_possibly_temporary_instance_for_cli\n"
        "with get_possibly_temporary_instance_for_cli('dagster dev', logger=logging.getLogger('x')) as i:\n"
        "    print(json.dumps({'root': i.root_directory, 'runs': len(i.get_run_records())}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "FOUNDATION_WORKSPACE")}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=demo, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    chosen = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(chosen["root"]) == demo / ".foundation" / "dagster"
    assert chosen["runs"] >= 2  # the demo's ingestion and pipeline runs, as `foundation ui` shows them


def test_a_kpi_without_time_is_built_published_and_sliced(demo: Path) -> None:
    result = foundation(demo, "kpi", "show", "mean_tool_wear", "--by", "product_type", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["data"]
    assert shown["grain"] == "refresh" and len(shown["history"]) == 1  # one refresh so far: one value
    assert {s["product_type"] for s in shown["series"]} == {"H", "L", "M"}
    mean = foundation(
        demo, "sql", "select avg(tool_wear_min) as v from gold.machine_failure__fct_product_runs", "--json"
    )
    assert shown["latest"]["value"] == pytest.approx(json.loads(mean.stdout)["data"][0]["v"])
