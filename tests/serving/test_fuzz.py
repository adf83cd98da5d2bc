"""Schemathesis with ALL its checks over every operation of the API's own OpenAPI document: 0 failures.

Over a real socket (`foundation serve`), with a valid key so the cases reach the models; every phase (examples,
coverage, fuzzing, stateful), positive and negative cases, a fixed seed and bounded examples. The checks cover
more than server errors: undocumented statuses and content types, bodies that do not match their declared schema,
schema-valid requests refused, invalid ones accepted, auth that is declared but ignored, unsupported methods.
(The CLI, `st run`, is what a reader would run; its exit code is 0 only when no check failed.)"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.serving.conftest import ALL_KEY
from tests.serving.server import Server

pytestmark = pytest.mark.slow


def test_every_check_of_schemathesis_passes_on_every_operation(own_workspace: Path, tmp_path: Path) -> None:
    from foundation.core.workspace import Workspace
    from mlops.inference import batch_score
    from tests.mlops.conftest import MlWorkspace

    batch_score(Workspace.open(own_workspace), MlWorkspace(own_workspace).ref("risk"))  # GET .../predictions reads it
    with Server(own_workspace, {"FOUNDATION_API__PREDICTION_LOG": "false"}) as server:
        server.wait_ready()
        with urllib.request.urlopen(f"{server.base}/openapi.json", timeout=30) as response:
            operations = sum(len(item) for item in json.loads(response.read())["paths"].values())
        command = [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{server.base}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"X-API-Key: {ALL_KEY}",
            "--max-examples",
            "10",
            "--seed",
            "1",
            "--workers",
            "2",
            "--no-color",
        ]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    report = done.stdout[-6000:]
    # 13, then predict-by-key and predictions per model and bare /invocations, and versions/{v}/predict per model
    assert operations >= 20
    assert f"Selected: {operations}/{operations}" in done.stdout and f"Tested: {operations}" in done.stdout, report
    assert done.returncode == 0, report
