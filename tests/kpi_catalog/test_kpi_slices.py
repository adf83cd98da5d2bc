"""KPIs sliced by a declared dimension: `foundation kpi show --by`, `GET /v1/kpis/{id}?by=` and the page's charts.

The catalogue reads what a build publishes; here a real gold Delta table and `kpis.json` are written as
`foundation run` writes them (the browser test in test_catalogue_page.py does the same over the demo's build).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import uvicorn
from deltalake import write_deltalake
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.engine.dbt.publish import catalog_path
from kpi_catalog.web import create_app
from tests.serving.server import free_port

# availability per segment and day: long_haul stays on target (>= 97), city falls below the alert (95)
VALUES = {
    None: [96.0, 95.5, 95.0],
    "long_haul": [98.0, 98.5, 99.0],
    "city": [96.0, 94.0, 91.0],
}


def publish_kpi(root: Path) -> None:
    """A KPI table (grain, period, segment, value) in gold and its catalogue entry, as a build publishes them."""
    (root / "foundation.yaml").write_text("state_dir: .foundation\n", encoding="utf-8")
    lakehouse = root / ".foundation" / "lakehouse"
    uri = str(lakehouse / "gold" / "fleet" / "kpi_fleet_availability")
    rows: dict[str, list[Any]] = {"grain": [], "period": [], "segment": [], "value": []}
    for segment, values in VALUES.items():
        for day, value in enumerate(values, start=1):
            rows["grain"].append("day")
            rows["period"].append(date(2026, 3, day))
            rows["segment"].append(segment)
            rows["value"].append(value)
    write_deltalake(uri, pa.table(rows))
    entry = {
        "id": "fleet_availability",
        "label": "Fleet availability",
        "description": "Share of hours on the road.",
        "owner": "fleet-ops@example.com",
        "unit": "%",
        "direction": "higher",
        "target": 97.0,
        "alert": 95.0,
        "grains": ["day"],
        "dimensions": ["segment"],
        "status": "certified",
        "usecase": "fleet",
        "yaml": "usecases/fleet/kpis/fleet_availability.yaml",
        "model": "fct_truck_day",
        "time": "date_day",
        "expression": "100.0 * avg(available)",
        "dbt_model": "kpi_fleet_availability",
        "gold_uri": uri,
        "sql": "",
        "upstream_models": ["fct_truck_day"],
        "lineage": [],
    }
    path = catalog_path(str(lakehouse))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"generated_at": "2026-03-04T00:00:00Z", "kpis": [entry]}), encoding="utf-8")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slices")
    publish_kpi(root)
    return root


@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[str]:
    """The catalogue app under uvicorn on a loopback socket, in a thread."""
    port = free_port()
    instance = uvicorn.Server(uvicorn.Config(create_app(workspace), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the catalogue server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=30)


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def kpi_show(workspace: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--workspace", str(workspace), "kpi", "show", "fleet_availability", *args])


def test_cli_by_dimension_gives_each_value_its_state_and_history(workspace: Path) -> None:
    result = kpi_show(workspace, "--by", "segment", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["data"]
    assert shown["by"] == "segment"
    slices = {s["segment"]: s for s in shown["series"]}
    assert set(slices) == {"city", "long_haul"}  # the total row (segment NULL) is not a slice
    assert [p["value"] for p in slices["city"]["history"]] == VALUES["city"]
    assert (slices["city"]["state"], slices["city"]["trend"]) == ("alert", "worsening")
    assert (slices["long_haul"]["state"], slices["long_haul"]["trend"]) == ("on_target", "improving")
    assert [p["value"] for p in shown["history"]] == VALUES[None]  # the total series is still there

    table = kpi_show(workspace, "--by", "segment")
    assert table.exit_code == 0, table.output
    assert "By segment (day)" in table.output and "long_haul" in table.output and "91.00 %" in table.output


def test_cli_unknown_dimension_is_a_usage_error_naming_the_declared_ones(workspace: Path) -> None:
    result = kpi_show(workspace, "--by", "truck_type")
    assert result.exit_code == 2
    assert "no dimension 'truck_type'" in result.output and "it has: segment" in result.output
    as_json = json.loads(kpi_show(workspace, "--by", "truck_type", "--json").output)
    assert as_json["ok"] is False and "it has: segment" in as_json["errors"][0]["message"]


def test_api_by_dimension_and_unknown_dimension(server: str) -> None:
    status, body = get(f"{server}/v1/kpis/fleet_availability?by=segment")
    assert status == 200
    assert {s["segment"]: s["latest"]["value"] for s in body["series"]} == {"city": 91.0, "long_haul": 99.0}
    status, plain = get(f"{server}/v1/kpis/fleet_availability")
    assert status == 200 and "series" not in plain
    status, refused = get(f"{server}/v1/kpis/fleet_availability?by=truck_type")
    assert status == 422 and "it has: segment" in refused["detail"]


def test_page_draws_one_chart_per_dimension_value(server: str) -> None:
    status, page = get(f"{server}/kpis/fleet_availability?by=segment")
    assert status == 200
    assert page.count('<svg class="chart"') == 3  # the total and one per segment
    assert "segment = city" in page and "segment = long_haul" in page
    assert 'aria-label="Fleet availability, segment city history"' in page
    status, total = get(f"{server}/kpis/fleet_availability")
    assert total.count('<svg class="chart"') == 1 and "?grain=day&amp;by=segment" in total  # a link to slice
    status, _ = get(f"{server}/kpis/fleet_availability?by=nope")
    assert status == 422
