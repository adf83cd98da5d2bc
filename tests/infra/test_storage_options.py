"""Storage options from one place: with the S3 credentials only in the profile (`lakehouse.storage_options`) and no
AWS_* variable in the environment, the modules that open Delta tables themselves read and write on a real
S3-compatible server (moto's server mode, tests/infra/s3_server.py) through
foundation.engine.lakehouse.object_store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, running_s3

from foundation.core.workspace import Workspace
from foundation.engine.dbt.publish import gold_uri
from foundation.engine.lakehouse.object_store import open_delta, storage_options_of, write_delta
from foundation.engine.quality.outcomes import CheckOutcome
from foundation.engine.quality.results import latest_results, record_outcomes
from mlops.dataset import published_columns
from mlops.registry import HistoryEvent, append_history, read_history

BUCKET = "profile-only"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
def workspace(make_workspace, s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Workspace:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))  # no ~/.aws either
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    options = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_REGION": REGION,
        "AWS_ALLOW_HTTP": "true",
    }
    root = f"s3://{BUCKET}/{tmp_path.name}"
    kit = make_workspace(settings={"lakehouse": {"root": root, "storage_options": options}})
    return Workspace.open(kit.root)


def test_the_options_come_from_the_profile(workspace: Workspace) -> None:
    options = storage_options_of(workspace)
    assert options is not None and options["AWS_ACCESS_KEY_ID"] == ACCESS_KEY
    assert not any(k.startswith("AWS_ACCESS") for k in os.environ)


def test_quality_results_round_trip(workspace: Workspace) -> None:
    outcome = CheckOutcome(
        check="not_null_km", stage="row", severity="error", passed=False, description="km", failing=2
    )
    record_outcomes(workspace, "uc/trucks", "load-1", datetime.now(UTC), [outcome])
    [row] = latest_results(workspace, "uc")
    assert (row["check"], row["failing"], row["status"]) == ("not_null_km", 2, "fail")


def test_promotion_history_round_trip(workspace: Workspace) -> None:
    append_history(workspace, HistoryEvent("uc_model", "promote", 1, None, "test", "first"))
    append_history(workspace, HistoryEvent("uc_model", "promote", 2, 1, "test", "better"))
    assert [e["version"] for e in read_history(workspace, "uc_model")] == [1, 2]


def test_feature_table_columns_from_gold_on_s3(workspace: Workspace) -> None:
    uri = gold_uri(workspace, "uc", "features")
    write_delta(workspace, uri, pa.table({"truck_id": ["T1"], "km": [1.0]}))
    assert open_delta(workspace, uri).version() == 0
    assert published_columns(workspace, "uc", "features") == ["truck_id", "km"]
