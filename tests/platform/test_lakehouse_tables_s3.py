"""Every layer queryable on object storage: a lakehouse on an S3-compatible server (moto's server mode,
tests/infra/s3_server.py) with the credentials only in `lakehouse.storage_options`, none in the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.object_store import write_delta
from foundation.platform.tables import list_tables, read_table
from tests.conftest import MakeWorkspace
from tests.infra.s3_server import ACCESS_KEY, REGION, SECRET_KEY, running_s3


def test_tables_and_read_table_on_s3_with_the_profiles_options(
    make_workspace: MakeWorkspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with running_s3() as s3:
        s3.create_bucket("tables")
        options = {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": s3.endpoint,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }
        kit = make_workspace(settings={"lakehouse": {"root": "s3://tables/lh", "storage_options": options}})
        workspace = Workspace.open(kit.root)
        write_delta(workspace, "s3://tables/lh/gold/shop/fct_orders", pa.table({"id": [1, 2, 3]}))
        write_delta(workspace, "s3://tables/lh/ml/shop/churn/predictions", pa.table({"id": [1], "score": [0.5]}))
        listed = {t["table"]: t["rows"] for t in list_tables(workspace)}
        assert listed == {"gold.shop__fct_orders": 3, "ml.shop__churn__predictions": 1}
        assert read_table("gold.shop__fct_orders", workspace).column("id").to_pylist() == [1, 2, 3]
