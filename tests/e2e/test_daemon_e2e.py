"""Unattended platform: the real `dagster-daemon` (through `foundation daemon`) on a temporary workspace picks up a
new landing file and refreshes bronze, the marts, the KPI values and the batch predictions, with no command typed.

The workspace is the AI4I use case of this repository, its landing folder watched (`load: {on_new_files: true}`),
the automation sensors looking every 5 s. Set-up (`foundation run`) lands the first file, builds and trains; then
the daemon starts, a second file is dropped and the test only waits (bounded) and reads the lakehouse.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

REPO = Path(__file__).resolve().parents[2]
FOUNDATION = [sys.executable, "-m", "foundation.cli.main"]
NEW_ROWS = 300
DEADLINE_S = 480  # the daemon's code location load, two runs (the load, then dbt + gold + scoring), on 2 loaded cores


def _workspace(tmp_path: Path) -> Path:
    """The repository's AI4I use case alone, its readings landed in landing/ai4i/ and watched."""
    root = tmp_path / "ws"
    root.mkdir()
    settings = (REPO / "foundation.yaml").read_text(encoding="utf-8")
    (root / "foundation.yaml").write_text(
        settings + "\nautomation:\n  policy: eager\n  sensor_interval_s: 5\n  file_sensor_interval_s: 5\n"
    )
    usecase = root / "usecases" / "machine_failure"
    shutil.copytree(REPO / "usecases" / "machine_failure", usecase, ignore=shutil.ignore_patterns("data"))
    source = usecase / "sources" / "ai4i_readings.yaml"
    text = source.read_text(encoding="utf-8")
    text = text.replace("path: usecases/machine_failure/data/ai4i2020.csv", "path: landing/ai4i/*.csv")
    text = text.replace("load: {mode: replace}", "load: {mode: replace, on_new_files: true}")
    assert "landing/ai4i/*.csv" in text and "on_new_files" in text
    source.write_text(text)
    # the fleet's failure_rate is not in this workspace: the KPI says its expression itself
    kpi = usecase / "kpis" / "failure_rate_by_machine_type.yaml"
    kpi.write_text(
        kpi.read_text(encoding="utf-8").replace(
            "extends: failure_rate\n",
            'unit: "%"\ndirection: lower\nexpression: 100.0 * avg(case when has_failure then 1 else 0 end)\n',
        )
    )
    # fewer, smaller candidates: the set-up trains once, this test is about what happens after
    spec = usecase / "ml" / "machine_failure.yaml"
    lines = spec.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if "logistic_regression" not in line and "gradient_boosting" not in line]
    spec.write_text("\n".join(kept).replace("n_estimators: 200", "n_estimators: 40") + "\n")
    ignore = shutil.ignore_patterns("_generated", "target", "logs", "fleet_maintenance")
    shutil.copytree(REPO / "dbt_project", root / "dbt_project", ignore=ignore)
    landing = root / "landing" / "ai4i"
    landing.mkdir(parents=True)
    shutil.copy(REPO / "usecases" / "machine_failure" / "data" / "ai4i2020.csv", landing / "ai4i2020.csv")
    old = time.time() - 60
    os.utime(landing / "ai4i2020.csv", (old, old))
    return root


def _new_rows_file(root: Path) -> Path:
    """NEW_ROWS more runs (new UDIs and product ids), every one a failure: the failure rate KPI must move."""
    with open(root / "landing" / "ai4i" / "ai4i2020.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    used = {r[1] for r in body}
    free = (f"L{n:05d}" for n in range(100_000) if f"L{n:05d}" not in used)
    extra = []
    for i, row in enumerate(body[:NEW_ROWS]):
        new = list(row)
        new[0], new[1], new[2] = str(len(body) + i + 1), next(free), "L"
        new[8], new[9] = "1", "1"  # Machine failure, TWF
        extra.append(new)
    partial = root / "landing" / "ai4i2020_extra.csv.partial"  # written outside the glob, then moved in at once
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *extra])
    target = root / "landing" / "ai4i" / "ai4i2020_extra.csv"
    partial.rename(target)
    return target


def _rows(uri: str) -> int:
    try:
        return DeltaTable(uri).to_pyarrow_table().num_rows
    except Exception:  # not written yet, or being committed
        return -1


def _failure_rate_today(uri: str) -> float | None:
    try:
        table = DeltaTable(uri).to_pyarrow_table().to_pylist()
    except Exception:
        return None
    totals = [r["value"] for r in table if r["grain"] == "day" and r["product_type"] is None]
    return max(totals) if totals else None


def _state(root: Path) -> dict[str, object]:
    lake = root / ".foundation" / "lakehouse"
    return {
        "bronze": _rows(str(lake / "bronze" / "machine_failure" / "ai4i_readings")),
        "mart": _rows(str(lake / "gold" / "machine_failure" / "fct_product_runs")),
        "kpi": _failure_rate_today(str(lake / "gold" / "machine_failure" / "kpi_failure_rate_by_machine_type")),
        "predictions": _rows(str(lake / "ml" / "machine_failure" / "machine_failure" / "predictions")),
    }


def _failed_runs(root: Path) -> list[str]:
    code = (
        "import dagster as dg, os\n"
        "i = dg.DagsterInstance.from_config(os.environ['DAGSTER_HOME'])\n"
        "for r in i.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])): print(r.run_id)\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(root / ".foundation" / "dagster")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return out.stdout.split()


@pytest.mark.slow
def test_daemon_refreshes_the_whole_graph_when_a_file_lands(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    setup = subprocess.run(
        [*FOUNDATION, "--workspace", str(root), "run", "--json"], capture_output=True, text=True, timeout=900
    )
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    before = _state(root)
    assert before["bronze"] == before["mart"] == 10_000
    assert before["predictions"] == 10_000, json.loads(setup.stdout)  # the set-up made a champion and scored
    assert isinstance(before["kpi"], float)

    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115 - closed in finally
    daemon = subprocess.Popen(
        [*FOUNDATION, "--workspace", str(root), "daemon"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the runs it launches stop with it
    )
    try:
        time.sleep(2)
        _new_rows_file(root)
        deadline = time.monotonic() + DEADLINE_S
        state = before
        while time.monotonic() < deadline and daemon.poll() is None:
            state = _state(root)
            if (
                state["bronze"] == state["mart"] == 10_000 + NEW_ROWS
                and state["predictions"] == 10_000 + NEW_ROWS
                and state["kpi"] != before["kpi"]
            ):
                break
            time.sleep(3)
        assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-5000:]
        assert state["bronze"] == 10_000 + NEW_ROWS, state
        assert state["mart"] == 10_000 + NEW_ROWS, state  # dbt built and gold published, no command typed
        assert state["predictions"] == 10_000 + NEW_ROWS, state  # the champion scored the new runs
        assert isinstance(state["kpi"], float) and state["kpi"] > before["kpi"], (before, state)  # all failures
        assert _failed_runs(root) == []  # no two warehouse writers stepped on each other
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        log.close()
