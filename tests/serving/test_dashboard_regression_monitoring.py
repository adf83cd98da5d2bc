"""The use-case dashboard of a monitored `task: regression` champion: the realised table shows MAE, RMSE and bias
(not precision and recall), links the `<model>_realised_mae` KPI and names the red check's problem. Served by the
real app (TestClient as a context manager), on the workspace tests/mlops/test_mlops_regression_monitoring.py
builds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mlops.test_mlops_regression_monitoring import monitor_a_regression


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return monitor_a_regression(tmp_path_factory)


def test_the_dashboard_page_shows_the_realised_error_table(
    monitored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    from fastapi.testclient import TestClient

    from foundation.engine.dbt.publish import write_catalog
    from mlops.kpis import catalog_entries
    from serving.app import create_app
    from tests.serving.conftest import KEYS, auth

    kit, red = monitored["kit"], monitored["red"]
    write_catalog(kit.workspace, {}, catalog_entries(kit.workspace))
    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    with TestClient(create_app(kit.root), raise_server_exceptions=False) as client:
        html = client.get("/dashboards/fleet", headers=auth()).text
    table = re.search(r'<table[^>]*id="realised-fleet__volume".*?</table>', html, re.S)
    assert table, html[-2000:]
    assert "MAE" in table.group(0) and "precision" not in table.group(0)
    assert f"{red['performance']['mae']:,.2f}" in table.group(0)  # realised, latest weeks
    assert "volume_realised_mae" in html and "realised MAE" in html  # the KPI link, the red check's problem
