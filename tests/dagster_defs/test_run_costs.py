"""What `foundation run` does once instead of twice: dbt's partial parse reused by the build, steps timed by stage."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from foundation.core.workspace import Workspace
from foundation.dagster_defs.dbt_assets import dbt_resource
from foundation.dagster_defs.pipeline_run import stage_of
from foundation.engine.dbt.partial_parse import PARTIAL_PARSE_FILE, reuse_partial_parse
from foundation.engine.dbt.project import prepare_project

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("step", "stage"),
    [
        ("fleet_maintenance__bronze__engine_telemetry", "ingestion"),
        ("dbt_models", "dbt"),
        ("fleet_maintenance__gold__published", "publish"),
        ("fleet_maintenance__ml__failure_risk__candidates", "ml"),
        ("fleet_maintenance__bronze__engine_telemetry_check_unique", "checks"),
    ],
)
def test_each_step_is_timed_in_its_stage(step: str, stage: str) -> None:
    assert stage_of(step) == stage


def test_partial_parse_file_is_copied_only_when_the_parse_is_newer(tmp_path: Path) -> None:
    parsed, run = tmp_path / "target", tmp_path / "target" / "run"
    assert reuse_partial_parse(parsed, run) is False  # nothing parsed yet: dbt parses in full, as it would
    parsed.mkdir()
    (parsed / PARTIAL_PARSE_FILE).write_bytes(b"v1")
    assert reuse_partial_parse(parsed, run) is True
    assert (run / PARTIAL_PARSE_FILE).read_bytes() == b"v1"
    # the build rewrote its own copy since: it is newer than the parse's, keep it
    later = time.time() + 10
    (run / PARTIAL_PARSE_FILE).write_bytes(b"v1-after-build")
    os.utime(run / PARTIAL_PARSE_FILE, (later, later))
    assert reuse_partial_parse(parsed, run) is False
    assert (run / PARTIAL_PARSE_FILE).read_bytes() == b"v1-after-build"
    # a new `dbt parse` (the project changed) is newer again: copied over
    (parsed / PARTIAL_PARSE_FILE).write_bytes(b"v2")
    os.utime(parsed / PARTIAL_PARSE_FILE, (later + 10, later + 10))
    assert reuse_partial_parse(parsed, run) is True
    assert (run / PARTIAL_PARSE_FILE).read_bytes() == b"v2"


@pytest.mark.slow
def test_the_build_reuses_the_parse_of_prepare_project(tmp_path: Path) -> None:
    """Real dbt: after `prepare_project`'s `dbt parse`, the dbt resource's invocation in the build's target folder
    parses nothing again (dbt refuses the saved file when, e.g., its `--target` differs from the parse's)."""
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(REPO / "foundation.yaml", root / "foundation.yaml")
    shutil.copytree(REPO / "usecases", root / "usecases")
    ignore = shutil.ignore_patterns("_generated", "kpis", "target", "logs", "dbt_packages")
    shutil.copytree(REPO / "dbt_project", root / "dbt_project", ignore=ignore)
    workspace = Workspace.open(root)
    paths = prepare_project(workspace)
    run_target = paths.target_dir / "run"
    assert reuse_partial_parse(paths.target_dir, run_target)
    dbt = dbt_resource(paths, workspace)
    dbt.cli(["parse"], target_path=run_target, raise_on_error=True).wait()
    log = (run_target / "dbt.log").read_text(encoding="utf-8")  # dagster-dbt logs into the target folder
    assert "partial parsing" in log.lower()  # the log is the one of a parse, which says how it parsed
    assert "Unable to do partial parsing" not in log
    assert "Starting full parse" not in log
