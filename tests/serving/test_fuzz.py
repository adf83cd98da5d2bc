"""Fuzz the whole API from its own OpenAPI spec with schemathesis (positive and negative cases): no 5xx, ever.

Over a real socket (`foundation serve`), with a valid key so the fuzzing reaches the models; bounded examples.
(schemathesis' pytest plugin clashes with this pytest's node ids, so operations are driven with its strategies.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from tests.serving.conftest import ALL_KEY
from tests.serving.server import Server

pytestmark = pytest.mark.slow


def test_no_input_makes_the_api_fail(served_workspace: Path) -> None:
    with Server(served_workspace, {"FOUNDATION_API__PREDICTION_LOG": "false"}) as server:
        server.wait_ready()
        schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json")
        failures: list[str] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 9
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
                def fuzz(case: schemathesis.Case) -> None:
                    response = case.call(base_url=server.base, headers={"X-API-Key": ALL_KEY}, timeout=30)
                    if response.status_code >= 500:
                        failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

                try:
                    fuzz()
                except Unsatisfiable:  # no negative case exists for an operation without inputs (GET /health/live)
                    assert mode is GenerationMode.NEGATIVE, operation.label
        assert not failures, failures
