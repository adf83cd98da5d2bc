"""Batch scoring on Spark (the Spark profile): on a local Spark session (`local[2]`, the `spark` dependency group),
the champion scores the same rows as the DuckDB path, with the same prediction ids and scores, in one Delta commit;
a re-run adds nothing, and neither does the DuckDB path after it. Only a Spark *cluster* is out of reach here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from deltalake import DeltaTable

from foundation.engine.lakehouse.catalog import delta_relation_sql
from mlops.dataset import feature_table_uri
from mlops.inference import batch_score, load_champion, prediction_id_sql, predictions_uri
from mlops.training import model_inputs, positive_scores

if not os.environ.get("CI"):  # CI installs the group (`make test`); there a missing PySpark must fail, not skip
    pytest.importorskip("pyspark", reason="scoring on Spark needs the spark dependency group: uv sync --group spark")
pytestmark = pytest.mark.slow


def test_spark_scores_the_rows_duckdb_would_with_the_same_ids_and_scores(trained: dict[str, Any]) -> None:
    from mlops.spark_scoring import score_on_profile, spark_batch_score, spark_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this interpreter (model and all)
    kit = trained["kit"]
    workspace, ref = kit.workspace, kit.ref()
    spark = spark_session(workspace)
    try:
        report = spark_batch_score(workspace, ref, spark)
        settings = kit.root / "foundation.yaml"  # the Spark profile: the `predictions` asset's call goes to Spark
        settings.write_text(settings.read_text() + "dbt:\n  target: spark\n", encoding="utf-8")
        again = score_on_profile(kit.workspace, ref)  # (reuses this process's session)
    finally:
        spark.stop()
    uri = predictions_uri(workspace, ref)
    table = DeltaTable(uri)
    assert table.version() == report.delta_version  # one commit (after the table's creation)
    predictions = table.to_pandas()
    con = duckdb.connect()
    features = con.execute(
        f"select {prediction_id_sql(ref.registered_name, ['truck_id', 'date_day'])} as prediction_id, * "
        f"from {delta_relation_sql(con, feature_table_uri(workspace, ref.usecase, ref.spec))}"
    ).df()
    con.close()
    assert report.rows_scored == len(features) == len(predictions)
    assert set(predictions["prediction_id"]) == set(features["prediction_id"])  # the ids DuckDB computes
    model, version, threshold, names = load_champion(workspace, ref)
    rows = features.merge(predictions, on="prediction_id", suffixes=("", "_p"))
    expected = positive_scores(model, model_inputs(rows, names))
    assert np.allclose(rows["score"], expected, rtol=0, atol=1e-12)
    assert (rows["label"] == (expected >= threshold)).all() and report.rows_flagged == int(rows["label"].sum())
    assert (rows["model_version"] == version).all() and (rows["truck_id"] == rows["truck_id_p"]).all()
    assert again.rows_scored == 0 and again.rows_already_scored == len(features)
    assert len(list(Path(uri).glob("spark-*"))) == 1  # the re-run's empty write was removed, not committed
    assert batch_score(workspace, ref).rows_scored == 0  # the DuckDB path agrees: every row already has its prediction


def test_scoring_goes_to_spark_on_the_spark_profile_with_a_local_lakehouse(tmp_path: Path) -> None:
    from foundation.core.workspace import Workspace
    from mlops.spark_scoring import scores_on_spark

    settings = tmp_path / "foundation.yaml"
    for text, expected in (
        ("state_dir: .foundation\n", False),  # the embedded profile: DuckDB in process
        ("dbt: {target: spark}\n", True),
        ("dbt: {target: spark}\nlakehouse: {root: 's3://lake/root'}\n", False),  # object storage: not yet
    ):
        settings.write_text(text, encoding="utf-8")
        assert scores_on_spark(Workspace.open(tmp_path)) is expected, text
