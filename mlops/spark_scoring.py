"""Batch scoring on Spark, for the Spark profile (`dbt.target: spark`): a feature table larger than one machine is
scored on the cluster.

The same rows and the same predictions table as `mlops.inference.batch_score`: Spark reads the gold snapshot's
Parquet files (`DeltaTable.file_uris()`: the local session has no Delta reader, see foundation/engine/dbt/spark.py),
leaves out the rows already predicted (anti-join on the prediction id, the same md5 DuckDB computes), scores with
the champion through `mlflow.pyfunc.spark_udf` (each executor loads the model once and scores Arrow batches), and
writes Parquet files into the predictions table's folder; one Delta commit then adds them (deltalake's
`create_write_transaction`), so a failed run publishes nothing and the table's readers never see half a batch.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction

from foundation.core.workspace import Workspace
from foundation.engine.dbt.spark import SPARK_TARGET, spark_conf, spark_state_dir
from foundation.engine.lakehouse.object_store import is_remote
from foundation.specs.model import ModelRef
from mlops.dataset import FeatureTableMissing, feature_table_uri
from mlops.inference import InferenceReport, batch_score, predictions_uri
from mlops.registry import RegistryError, current_champion, mlflow_client


def scoring_conf(workspace: Workspace) -> dict[str, str]:
    """The dbt Spark session's settings (master, memory, UTC; `dbt.spark_conf` wins), without its metastore: scoring
    registers nothing, and the embedded metastore takes one user at a time."""
    conf = spark_conf(spark_state_dir(workspace), workspace.settings.dbt.spark_conf)
    conf = {k: v for k, v in conf.items() if "javax.jdo" not in k and "derby" not in v}
    conf |= {
        "spark.app.name": "foundation-scoring",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",  # what Delta readers expect, not INT96
    }
    return conf


def spark_session(workspace: Workspace) -> Any:
    from pyspark.sql import SparkSession  # lazy: the spark dependency group, only on the Spark profile

    builder = SparkSession.builder
    for key, value in scoring_conf(workspace).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def scores_on_spark(workspace: Workspace) -> bool:
    """The Spark profile with a lakehouse on this machine's filesystem (see `score_on_profile`)."""
    return workspace.settings.dbt.target == SPARK_TARGET and not is_remote(workspace.lakehouse_root)


def score_on_profile(workspace: Workspace, ref: ModelRef) -> InferenceReport:
    """The `predictions` asset's scoring: on Spark for the Spark profile (`dbt.target: spark`), else in process
    (DuckDB + the estimator, `mlops.inference.batch_score`). A lakehouse on object storage is scored in process for
    now: the commit lists Spark's files on the local filesystem (listing them through the object store, and Spark's
    s3a connector, are not done)."""
    if not scores_on_spark(workspace):
        return batch_score(workspace, ref)
    spark = spark_session(workspace)  # getOrCreate: a session this process already runs is reused, not stopped
    return spark_batch_score(workspace, ref, spark)


def _champion(workspace: Workspace, ref: ModelRef) -> tuple[str, int, float | None, list[str]]:
    """The champion's pinned model URI, version, threshold (None: regression) and features, from its registry tags."""
    client = mlflow_client(workspace)
    champion = current_champion(client, ref.registered_name)
    if champion is None:
        raise RegistryError(f"{ref.registered_name} has no champion: run `foundation train {ref.usecase}` first")
    tags = champion.tags or {}
    threshold = float(tags["foundation.threshold"]) if "foundation.threshold" in tags else None
    uri = f"models:/{ref.registered_name}/{champion.version}"  # the version the alias points at now, pinned
    return uri, int(champion.version), threshold, json.loads(tags["foundation.features"])


def spark_batch_score(workspace: Workspace, ref: ModelRef, spark: Any) -> InferenceReport:
    """Score every feature row without a prediction with the champion on Spark; add them in one Delta commit."""
    from pyspark.sql import functions as F  # lazy: as above

    started = time.perf_counter()
    model_uri, version, threshold, features = _champion(workspace, ref)
    spec = ref.spec
    try:
        snapshot = DeltaTable(feature_table_uri(workspace, ref.usecase, spec))
    except TableNotFoundError as exc:
        raise FeatureTableMissing(f"{ref.usecase}/{spec.feature_table} is not published yet") from exc
    out = predictions_uri(workspace, ref)
    keys = list(dict.fromkeys((*spec.entity, spec.time)))
    rows = spark.read.parquet(*snapshot.file_uris())
    identity = F.md5(F.concat_ws("|", F.lit(ref.registered_name), *(F.col(c).cast("string") for c in keys)))
    rows = rows.select(identity.alias("prediction_id"), *keys, *features)
    table = _table(out)
    already = 0
    if table is not None and table.file_uris():
        done = spark.read.parquet(*table.file_uris()).select("prediction_id")
        already = done.count()
        rows = rows.join(done, "prediction_id", "left_anti")
    numeric = {f.name for f in rows.schema.fields if f.dataType.typeName() in _NUMERIC}
    inputs = [(F.col(f).cast("double") if f in numeric else F.col(f)).alias(f) for f in features]  # `model_inputs`
    import mlflow.pyfunc  # lazy: mlflow, +2 s

    udf = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type="double" if threshold is None else "array<double>", env_manager="local"
    )
    score = udf(F.struct(*inputs))
    score = score if threshold is None else score[1]  # predict_proba's [False, True] columns: the positive class
    scored = rows.select("prediction_id", *keys, score.alias("score"))
    label = F.lit(None).cast("boolean") if threshold is None else F.col("score") >= F.lit(threshold)
    result = scored.select(
        "prediction_id",
        F.lit(ref.registered_name).alias("model"),
        F.lit(version).cast("long").alias("model_version"),
        F.lit(datetime.now(UTC)).cast("timestamp").alias("scored_at"),
        *keys,
        "score",
        label.alias("label"),
        F.lit(threshold).cast("double").alias("threshold"),
        F.lit(snapshot.version()).cast("long").alias("feature_table_version"),
    )
    folder = f"spark-{uuid.uuid4().hex}"  # inside the table's folder: Delta paths are relative to its root
    result.write.parquet(f"{out}/{folder}")
    written = spark.read.parquet(f"{out}/{folder}").agg(F.count("*"), F.count_if(F.col("label"))).collect()[0]
    count, flagged = int(written[0]), int(written[1])
    delta_version = _commit(out, folder, table) if count else None
    if not count:  # nothing new: Spark still wrote an empty file; no commit, no file left behind
        shutil.rmtree(Path(out) / folder, ignore_errors=True)
    seconds = time.perf_counter() - started
    return InferenceReport(
        ref.registered_name, version, count, already, flagged, delta_version, seconds, count / seconds
    )


_NUMERIC = {"byte", "short", "integer", "long", "float", "double", "decimal", "boolean"}


def _table(uri: str) -> DeltaTable | None:
    try:
        return DeltaTable(uri)
    except TableNotFoundError:
        return None


def _commit(out: str, folder: str, table: DeltaTable | None) -> int | None:
    """One Delta commit adding the Parquet files Spark wrote under `out/folder` (none: nothing to commit)."""
    files = sorted((Path(out) / folder).glob("*.parquet"))
    if not files:
        return None
    schema = pq.read_schema(files[0])
    actions = []
    for file in files:
        stat = file.stat()
        rows = pq.read_metadata(file).num_rows
        path = f"{folder}/{file.name}"
        actions.append(
            AddAction(path, stat.st_size, {}, int(stat.st_mtime * 1000), True, json.dumps({"numRecords": rows}))
        )
    if table is None:
        write_deltalake(out, schema.empty_table(), mode="append")  # the table, with no rows yet
        table = DeltaTable(out)
    table.create_write_transaction(actions, mode="append", schema=schema)
    return DeltaTable(out).version()
