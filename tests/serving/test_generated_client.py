"""A typed Python client generated from the live OpenAPI document (openapi-python-client, tools/openapi-client's
locked environment) calls predict and predict-by-key on `foundation serve` (issue 16 item 6): the generator accepts
the document, the per-model classes and functions exist, and they answer what the API answers."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.serving.conftest import ALL_KEY
from tests.serving.server import Server

pytestmark = pytest.mark.slow

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "openapi-client"

CALLS = """
import json, sys
from fleet_client import AuthenticatedClient
from fleet_client.api.predict import predict_by_key_fleet_risk, predict_fleet_risk
from fleet_client.models import ErrorBody, FleetRiskKey, FleetRiskKeysRequest, FleetRiskPredictRequest

api = AuthenticatedClient(base_url=sys.argv[1], token=sys.argv[2])
keys = FleetRiskKeysRequest(keys=[FleetRiskKey(truck_id="T001"), FleetRiskKey(truck_id="NOPE")])
found, unknown = predict_by_key_fleet_risk.sync(client=api, body=keys).predictions
row = found.features.to_dict()
plain = predict_fleet_risk.sync(client=api, body=FleetRiskPredictRequest.from_dict({"instances": [row]}))
wrong = FleetRiskPredictRequest.from_dict({"instances": [{**row, "truck_type": 7}]})  # the client does not check
refused = predict_fleet_risk.sync_detailed(client=api, body=wrong)
print(json.dumps({
    "as_of": found.as_of, "by_key": found.score, "predict": plain.predictions[0].score, "found": found.found,
    "unknown": [unknown.found, unknown.detail], "refused": [refused.status_code, isinstance(refused.parsed, ErrorBody)],
}))
"""


def tools_python() -> Path:
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to sync tools/openapi-client (make test installs it)"
    synced = subprocess.run([uv, "sync", "--frozen", "--project", str(TOOLS)], capture_output=True, text=True)
    assert synced.returncode == 0, synced.stderr[-2000:]
    return TOOLS / ".venv" / "bin" / "python"


def test_a_generated_client_scores_by_key_and_by_row(served_workspace: Path, tmp_path: Path) -> None:
    python = tools_python()
    with Server(served_workspace, {"FOUNDATION_API__PREDICTION_LOG": "false"}) as server:
        server.wait_ready()
        with urllib.request.urlopen(f"{server.base}/openapi.json", timeout=30) as response:
            (tmp_path / "openapi.json").write_bytes(response.read())
        generator = python.parent / "openapi-python-client"
        generate = [
            str(generator),
            "generate",
            "--path",
            "openapi.json",
            "--meta",
            "none",
            "--output-path",
            "fleet_client",
        ]
        made = subprocess.run(generate, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert made.returncode == 0 and "Warning" not in made.stdout, made.stdout + made.stderr
        done = subprocess.run(
            [str(python), "-c", CALLS, server.base, ALL_KEY], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["found"] is True and answer["as_of"] == "2026-02-09"  # T001's latest day in the synthetic table
    assert answer["by_key"] == pytest.approx(answer["predict"], abs=1e-12)
    assert answer["unknown"][0] is False and "'NOPE'" in answer["unknown"][1]
    assert answer["refused"] == [422, True]
