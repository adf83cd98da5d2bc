"""The demo's workshop API (foundation/demo/workshop_api.py) with the demo's own source YAML: it serves what the
generator wrote, is token-protected, sets and restores its environment variables, and its absence is explained."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from foundation.demo.fleet_data import FleetSize, generate_fleet_landing
from foundation.demo.workshop_api import TOKEN_ENV, URL_ENV, running_workshop_api
from foundation.engine.connectors.staging import ExtractError

REPO = Path(__file__).resolve().parents[3]
SOURCES = REPO / "usecases" / "fleet_maintenance" / "sources"


@pytest.fixture
def fleet_kit(make_workspace):
    kit = make_workspace(usecase="fleet_maintenance")
    folder = kit.root / "usecases" / "fleet_maintenance" / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("maintenance", "failures"):
        shutil.copy(SOURCES / f"{name}.yaml", folder / f"{name}.yaml")
    landing = generate_fleet_landing(kit.root / "landing" / "fleet_maintenance", FleetSize(trucks=6, days=60, seed=3))
    return kit, landing


def test_the_demo_sources_land_every_record_through_the_workshop_api(fleet_kit, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    kit, landing = fleet_kit
    with running_workshop_api(landing.root, page_size=5) as api:
        assert os.environ[URL_ENV] == api.url and os.environ[TOKEN_ENV] == api.token
        maintenance = kit.ingest("maintenance")
        failures = kit.ingest("failures")
        unauthorised = requests.get(api.url + "maintenance", timeout=5)
    assert URL_ENV not in os.environ and TOKEN_ENV not in os.environ  # restored
    assert unauthorised.status_code == 401
    assert maintenance.rows_landed == landing.rows["maintenance"] and maintenance.reconciles
    assert failures.rows_landed == landing.rows["failures"] and failures.reconciles
    assert maintenance.notes["pages"] == -(-landing.rows["maintenance"] // 5)
    columns = [c for c, _ in maintenance.schema]
    assert columns[:6] == ["maintenance_id", "truck_id", "started_at", "ended_at", "kind", "cost_eur"]
    assert dict(failures.schema)["severity"] == "int32" and dict(failures.schema)["failed_at"] == "timestamp[us]"


def test_without_the_api_the_error_says_foundation_demo_starts_it(fleet_kit, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    kit, _ = fleet_kit
    with pytest.raises(ExtractError, match=r"WORKSHOP_API_URL is not set.*`foundation demo`"):
        kit.ingest("maintenance")
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:9/api/")  # a stale URL from an earlier demo
    monkeypatch.setenv(TOKEN_ENV, "old-token")
    with pytest.raises(ExtractError, match=r"cannot reach http://127\.0\.0\.1:9/api/maintenance .*`foundation demo`"):
        kit.ingest("maintenance")
