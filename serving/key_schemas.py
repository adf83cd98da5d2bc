"""The response schemas of score-by-key and the batch predictions (pydantic), apart from the logic that fills them.

Each model's request schema (its entity columns, typed from the feature table) is built by serving.lookup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

AS_OF = "The time column's value of the row scored: ISO 8601 text for a date or timestamp, a number for an ordinal."


class KeyPrediction(BaseModel):
    key: dict[str, Any] = Field(description="The key as sent: the model's entity columns.")
    found: bool = Field(description="Whether the feature table holds a row for this key; if not, `detail` says so.")
    as_of: str | int | float | None = Field(None, description=AS_OF)
    features: dict[str, Any] | None = Field(None, description="The model's inputs read from that row.")
    prediction_id: str | None = Field(None, description="A unique id (uuid4) to join feedback on.")
    model: str | None = None
    version: int | None = None
    prediction: Any = Field(None, description="The label (classifiers with a threshold) or the model's raw output.")
    score: float | None = Field(None, description="Probability of the positive class, when the model gives one.")
    detail: str | None = Field(None, description="Why the key was not found.")


class PredictByKeyResponse(BaseModel):
    model: str
    version: int
    feature_table: str = Field(description="`<usecase>/<table>`: the gold feature table read.")
    feature_table_version: int = Field(description="The Delta version of it that the lookup index holds.")
    predictions: list[KeyPrediction] = Field(description="One item per key, in the order sent.")


class BatchPrediction(BaseModel):
    prediction_id: str = Field(description="The batch prediction's id: a hash of model, entity and time.")
    key: dict[str, Any] = Field(description="The entity columns.")
    as_of: str | int | float | None = Field(description=AS_OF)
    model_version: int
    scored_at: datetime
    prediction: bool | float = Field(
        description="The label (a classifier: score >= threshold), or the predicted value (a regression)."
    )
    score: float = Field(description="The positive class' probability, or the predicted value (a regression).")
    threshold: float | None = Field(description="The classifier's threshold; null for a regression.")


class BatchPredictionsResponse(BaseModel):
    model: str
    predictions_table_version: int = Field(description="The Delta version of the predictions table read.")
    predictions: list[BatchPrediction] = Field(description="Newest first (time column, then score).")
