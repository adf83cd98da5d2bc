"""The served models: the `champion` of every registered model, loaded from the workspace's MLflow registry.

A `ServedModel` holds the loaded model, its request schema (from its signature) and what `/v1/models/{name}`
shows. Scoring is one call of the model per batch; its raw output is what MLflow's scoring server would answer
(`/invocations`), and `/predict` derives scores and labels from that same output.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from foundation.core.workspace import Workspace
from mlops.registry import CHAMPION, current_champion, mlflow_client, read_history
from serving.errors import InvalidInput
from serving.schemas import ColumnSpec, batch_model, columns_from_signature, row_model

log = logging.getLogger("serving.loaded_models")

PROMOTING_ACTIONS = ("promote", "manual_promote", "rollback")


@dataclass
class ServedModel:
    name: str
    version: int
    flavor: str  # sklearn | pyfunc
    model: Any
    predict_fn: str
    columns: list[ColumnSpec] | None
    row_model: type[BaseModel]
    request_model: type[BaseModel]
    threshold: float | None = None
    description: str | None = None
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    promotion: dict[str, Any] | None = None
    alias: str = CHAMPION
    example_rows: list[dict[str, Any]] = field(default_factory=list)  # the OpenAPI examples (serving.openapi)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    # -- input ---------------------------------------------------------------------------------------------
    def validate(self, payload: dict[str, Any], rename: str | None = None) -> list[dict[str, Any]]:
        """`{"instances": [...]}` checked against the signature (422 names each field); rows keyed by column.

        `rename` replaces `instances` in error fields by the key the client used (`dataframe_records[0].temp`)."""
        try:
            request = self.request_model.model_validate(payload)
        except ValidationError as exc:
            items = InvalidInput.from_validation(exc).items
            if rename:
                for item in items:
                    if item["field"].startswith("instances"):
                        item["field"] = rename + item["field"].removeprefix("instances")
            raise InvalidInput(items) from None
        return [row.model_dump(by_alias=True) for row in request.instances]  # type: ignore[attr-defined]

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Rows as the model was trained on them: signature order, numbers as float64, text as object."""
        if self.columns is None:
            return pd.DataFrame.from_records(rows)
        data: dict[str, Any] = {}
        for column in self.columns:
            values = [row.get(column.name) for row in rows]
            if column.type in ("double", "float"):
                data[column.name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
            elif column.type in ("long", "integer") and None not in values:
                data[column.name] = np.array(values, dtype="int64")
            elif column.type in ("long", "integer"):
                data[column.name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
            else:
                data[column.name] = pd.Series(values, dtype="object")
        return pd.DataFrame(data)

    # -- scoring -------------------------------------------------------------------------------------------
    def raw_predict(self, frame: pd.DataFrame) -> Any:
        """The model's output for the frame, as MLflow's pyfunc would give it."""
        if self.flavor == "sklearn":
            return getattr(self.model, self.predict_fn)(frame)
        return self.model.predict(frame)

    def positive_scores(self, output: Any) -> np.ndarray | None:
        """Probability of the positive class from a `predict_proba` output (None for other outputs)."""
        if self.flavor != "sklearn" or self.predict_fn != "predict_proba":
            return None
        classes = list(getattr(self.model, "classes_", []))
        positive = next((i for i, c in enumerate(classes) if c is True or c == 1), len(classes) - 1)
        return np.asarray(output)[:, positive].astype("float64")

    def predict(self, rows: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
        """(the raw output, MLflow-serialisable; one prediction per row with its id, model and version)."""
        output = self.raw_predict(self.frame(rows))
        scores = self.positive_scores(output)
        raw = to_jsonable(output)
        predictions = []
        for i in range(len(rows)):
            if scores is not None:
                score = float(scores[i])
                value: Any = score >= (self.threshold if self.threshold is not None else 0.5)
            else:
                score, value = None, raw[i]
            predictions.append(
                {
                    "prediction_id": str(uuid.uuid4()),
                    "model": self.name,
                    "version": self.version,
                    "prediction": value,
                    "score": score,
                }
            )
        return raw, predictions

    # -- description ---------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "flavor": self.flavor,
            "loaded_at": self.loaded_at,
        }

    def detail(self) -> dict[str, Any]:
        promotion = self.promotion or {}
        return {
            **self.summary(),
            "description": self.description,
            "run_id": self.run_id,
            "metric": self.tags.get("foundation.metric"),
            "score": _float(self.tags.get("foundation.score")),
            "threshold": self.threshold,
            "metrics": self.metrics,
            "input_schema": [c.to_dict() for c in self.columns] if self.columns is not None else None,
            "input_json_schema": self.row_model.model_json_schema(by_alias=True),
            "promoted_at": promotion.get("at"),
            "promoted_by": promotion.get("actor"),
            "promotion_reason": promotion.get("reason"),
        }


def to_jsonable(output: Any) -> list[Any]:
    """A model output as plain JSON values at full precision, one item per row (NaN as null): what MLflow's
    scoring server puts in `predictions`."""
    if isinstance(output, pd.DataFrame):
        rows: list[Any] = output.astype("object").to_dict(orient="records")
    elif isinstance(output, pd.Series | np.ndarray):
        rows = np.asarray(output).tolist()
    else:
        rows = list(output)
    return [_plain(v) for v in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def promotion_of(events: Iterable[dict[str, Any]], version: int) -> dict[str, Any] | None:
    """The latest history event that made `version` the champion (promotion, manual promotion or rollback)."""
    found = None
    for event in events:
        if event.get("action") in PROMOTING_ACTIONS and event.get("version") == version:
            found = event
    return found


@dataclass
class LoadResult:
    models: dict[str, ServedModel]
    errors: dict[str, str]
    skipped: list[str]  # registered models without a champion


def load_champion(workspace: Workspace, client: Any, name: str, max_batch_size: int) -> ServedModel | None:
    """The champion of one registered model, or None if it has none."""
    champion = current_champion(client, name)
    if champion is None:
        return None
    return load_version(workspace, client, name, champion, max_batch_size)


def load_version(
    workspace: Workspace, client: Any, name: str, champion: Any, max_batch_size: int, alias: str = CHAMPION
) -> ServedModel:
    """One registry version (`champion`: its ModelVersion) loaded for serving under `alias` (`champion`, or
    `challenger` and `version` for serving.versions)."""
    # lazy: mlflow (2-3 s) sets up its logging at import: `foundation serve` turns that off (MLFLOW_CONFIGURE_LOGGING)
    # after importing this app and before the models load
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import get_model_info

    uri = f"models:/{name}/{champion.version}"  # pin the version the alias pointed at when we looked
    info = get_model_info(uri)
    flavors = info.flavors or {}
    if "sklearn" in flavors:
        model = mlflow.sklearn.load_model(uri)
        flavor = "sklearn"
        predict_fn = (flavors.get("python_function") or {}).get("predict_fn") or "predict"
    else:
        model = mlflow.pyfunc.load_model(uri)
        flavor, predict_fn = "pyfunc", "predict"
    columns = columns_from_signature(info.signature)
    row = row_model(name, columns)
    tags = dict(champion.tags or {})
    metrics: dict[str, float] = {}
    if champion.run_id:
        try:
            metrics = dict(client.get_run(champion.run_id).data.metrics)
        except Exception as exc:  # the run may live in another store: the model is still servable
            log.warning("%s v%s: cannot read the metrics of run %s: %s", name, champion.version, champion.run_id, exc)
    registered = client.get_registered_model(name)
    served = ServedModel(
        name=name,
        version=int(champion.version),
        flavor=flavor,
        model=model,
        predict_fn=predict_fn,
        columns=columns,
        row_model=row,
        request_model=batch_model(name, row, max_batch_size),
        threshold=_float(tags.get("foundation.threshold")),
        description=registered.description,
        run_id=champion.run_id,
        tags=tags,
        metrics=metrics,
        promotion=promotion_of(read_history(workspace, name), int(champion.version)),
        alias=alias,
    )
    served.example_rows = valid_examples(served, input_example_rows(uri))
    return served


def input_example_rows(uri: str) -> list[dict[str, Any]]:
    """The rows of the input example logged with the model (mlops logs real rows of its data) as JSON values;
    [] when it has none or it cannot be read (the model is still served, its OpenAPI has no example)."""
    from mlflow.models import Model  # lazy: mlflow, as in load_champion

    try:
        example = Model.load(uri).load_input_example(uri)
    except Exception as exc:
        log.warning("%s: cannot read its input example: %s: %s", uri, type(exc).__name__, exc)
        return []
    if not isinstance(example, pd.DataFrame):
        return []
    return [{str(k): _plain(v) for k, v in row.items()} for row in example.astype("object").to_dict("records")]


def valid_examples(model: ServedModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The example rows the model's own request schema accepts (an example must answer 200)."""
    kept = []
    for row in rows:
        try:
            model.validate({"instances": [row]})
        except InvalidInput:
            continue
        kept.append(row)
    return kept


def load_champions(workspace: Workspace, max_batch_size: int) -> LoadResult:
    """Every registered model's champion. A model that fails to load is reported, not served; models without a
    champion are skipped. Raises only if the registry itself cannot be read."""
    client = mlflow_client(workspace)
    names = [m.name for m in client.search_registered_models(order_by=["name ASC"])]
    result = LoadResult({}, {}, [])
    for name in names:
        try:
            served = load_champion(workspace, client, name, max_batch_size)
        except Exception as exc:
            log.error("cannot load the champion of %s: %s: %s", name, type(exc).__name__, exc)
            result.errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        if served is None:
            log.warning("%s has no champion alias: not served", name)
            result.skipped.append(name)
        else:
            log.info("serving %s v%s (%s)", name, served.version, served.flavor)
            result.models[name] = served
    return result
