"""Every layer of the lakehouse queryable: `foundation sql`, `foundation tables` and `read_table()`.

A real load lands bronze and quarantine; gold, the ML tables and quality results are real Delta tables written where
`foundation run` writes them, and the dbt manifest names each gold model's folder (no dbt build needed here; the demo
build is read by tests/e2e/test_notebook.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.engine.dbt.paths import dbt_paths
from foundation.platform.tables import classify, read_table
from tests.conftest import MakeWorkspace, WorkspaceKit, source_spec


@pytest.fixture
def lakehouse(make_workspace: MakeWorkspace) -> WorkspaceKit:
    kit = make_workspace(
        sources=[
            source_spec(
                "orders",
                {"type": "csv", "path": "landing/orders.csv"},
                columns=[{"name": "id", "type": "integer"}, {"name": "amount", "type": "double"}],
            )
        ],
        files={"landing/orders.csv": "id,amount\n1,10.5\n2,not a number\n3,7\n"},
        usecase="shop",
    )
    report = kit.ingest("orders")
    assert (report.rows_landed, report.rows_quarantined) == (2, 1)
    workspace = kit.open()
    root = workspace.lakehouse_root
    write_deltalake(f"{root}/gold/shop/fct_orders", pa.table({"id": [1, 3], "amount": [10.5, 7.0]}))
    write_deltalake(f"{root}/gold/shop/fct_orders", pa.table({"id": [4], "amount": [1.0]}), mode="append")
    write_deltalake(f"{root}/ml/shop/churn/predictions", pa.table({"id": [1, 3], "score": [0.9, 0.2]}))
    write_deltalake(f"{root}/ml/_registry/promotions", pa.table({"model": ["shop__churn"], "version": [1]}))
    manifest = dbt_paths(workspace).manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    node = {"resource_type": "model", "name": "fct_orders", "fqn": ["foundation", "shop", "marts", "fct_orders"]}
    manifest.write_text(json.dumps({"nodes": {"model.foundation.fct_orders": node}}), encoding="utf-8")
    return kit


def cli(kit: WorkspaceKit, *args: str) -> Any:
    return CliRunner().invoke(app, ["--workspace", str(kit.root), *args])


def test_classify_names_each_layer() -> None:
    assert classify(("bronze", "shop", "orders")) == ("bronze", "shop__orders")
    assert classify(("bronze", "shop", "orders__quarantine")) == ("quarantine", "shop__orders")
    assert classify(("gold", "shop", "fct_orders")) == ("gold", "shop__fct_orders")
    assert classify(("ml", "shop", "churn", "drift")) == ("ml", "shop__churn__drift")
    assert classify(("ml", "_registry", "promotions")) == ("ml", "promotions")
    assert classify(("quality", "check_results")) == ("quality", "check_results")


def test_sql_sees_every_layer(lakehouse: WorkspaceKit) -> None:
    query = (
        "select (select count(*) from bronze.shop__orders) as bronze,"
        " (select count(*) from quarantine.shop__orders) as quarantine,"
        " (select count(*) from bronze.shop__orders__quarantine) as quarantine_by_its_earlier_name,"
        " (select count(*) from gold.shop__fct_orders) as gold,"
        " (select count(*) from marts.shop__fct_orders) as marts,"
        " (select max(score) from ml.shop__churn__predictions) as top_score,"
        " (select count(*) from ml.promotions) as promotions"
    )
    result = cli(lakehouse, "sql", query, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["data"] == [
        {
            "bronze": 2,
            "quarantine": 1,
            "quarantine_by_its_earlier_name": 1,
            "gold": 3,
            "marts": 3,
            "top_score": 0.9,
            "promotions": 1,
        }
    ]


def test_tables_lists_layer_rows_version_and_time(lakehouse: WorkspaceKit) -> None:
    result = cli(lakehouse, "tables", "--json")
    assert result.exit_code == 0, result.output
    listed = {t["table"]: t for t in json.loads(result.output)["data"]}
    assert {"bronze.shop__orders", "quarantine.shop__orders", "gold.shop__fct_orders", "marts.shop__fct_orders"} <= set(
        listed
    )
    assert {"ml.shop__churn__predictions", "ml.promotions", "quality.check_results"} <= set(listed)
    assert "bronze.shop__orders__quarantine" not in listed  # the earlier name stays queryable, not listed twice
    gold = listed["gold.shop__fct_orders"]
    assert (gold["layer"], gold["rows"], gold["delta_version"]) == ("gold", 3, 1)
    assert gold["updated_at"].startswith("20")
    only_ml = json.loads(cli(lakehouse, "tables", "ml", "--json").output)["data"]
    assert {t["layer"] for t in only_ml} == {"ml"}
    unknown = cli(lakehouse, "tables", "silver")
    assert unknown.exit_code == 2 and "it has: bronze, gold, marts, ml, quality, quarantine" in unknown.output
    table = cli(lakehouse, "tables")
    assert table.exit_code == 0 and "shop__fct_orders" in table.output


def test_read_table_returns_arrow_and_names_the_closest_tables(lakehouse: WorkspaceKit) -> None:
    gold = read_table("gold.shop__fct_orders", lakehouse.root)
    assert isinstance(gold, pa.Table)
    assert sorted(gold.to_pandas()["id"]) == [1, 3, 4]
    refused = read_table("quarantine.shop__orders", lakehouse.open())
    assert refused.num_rows == 1 and "not a number" in str(refused.to_pylist()[0])
    with pytest.raises(LookupError, match=r"did you mean gold\.shop__fct_orders"):
        read_table("gold.shop__fct_order", lakehouse.root)


def test_sql_and_tables_on_an_empty_workspace(tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["--workspace", str(tmp_path), "sql", "select * from gold.x"])
    assert result.exit_code == 1 and "gold" in result.output
    listing = CliRunner().invoke(app, ["--workspace", str(tmp_path), "tables"])
    assert listing.exit_code == 1 and "foundation run" in listing.output
