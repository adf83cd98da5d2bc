"""Request and response schemas (pydantic), apart from the logic that fills them.

A served model's request schema is built from its MLflow signature: one pydantic model per model, with the
signature's types, its required columns as required fields, unknown fields rejected (`extra="forbid"`) and a
maximum batch size from the settings. Numbers are what the model can take: finite (no `Infinity`, `1e400` or
`"NaN"`: they passed validation and made the model raise, a 500 for the client and a broken micro-batch for the
others), within ±FLOAT_BOUND (a finite 1e300 overflowed inside the model just the same: float32 in the trees,
products with the coefficients), never `true`/`false`, integers within their signature's width; NaN is a missing
value, accepted only in a column the signature marks optional (scored as missing, as null is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, create_model
from pydantic_core import PydanticCustomError

from serving.errors import InvalidInput

# MLflow DataType names -> Python types pydantic validates against.
MLFLOW_TYPES: dict[str, type] = {
    "boolean": bool,
    "integer": int,
    "long": int,
    "float": float,
    "double": float,
    "string": str,
    "binary": bytes,
    "datetime": datetime,
}


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of a model signature."""

    name: str
    type: str
    required: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "required": self.required}


def columns_from_signature(signature: Any) -> list[ColumnSpec] | None:
    """The input columns of an MLflow signature (None when the model has no column-based signature)."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not getattr(inputs, "has_input_names", lambda: False)() or inputs.is_tensor_spec():
        return None
    columns = []
    for spec in inputs.inputs:
        kind = getattr(spec.type, "name", None) or str(spec.type)
        columns.append(ColumnSpec(spec.name, str(kind), bool(getattr(spec, "required", True))))
    return columns


def _class_name(model: str, suffix: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", model) if part) + suffix


# The largest magnitude of a real-number input: beyond any feature served here, within float64's exact integers
# (2**53 ~ 9.007e15), far inside float32 (3.4e38, what tree models convert to) and safe from overflow in a product.
FLOAT_BOUND = 1e15

# The integer widths of MLflow's integer types: a bigger value overflowed the model's int64 frame (a 500).
INTEGER_BOUNDS = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def _number_not_bool(kind: str) -> Any:
    """pydantic's lax mode takes `true` as 1: for a number column it is a client's mistake, not a value."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError(f"{kind}_type", f"Input should be a valid {kind}, not true or false")
        return value

    return check


def _nan_is_missing(check: Any) -> Any:
    def missing(value: Any) -> Any:
        return None if isinstance(value, float) and value != value else check(value)

    return missing


def field_type(column: ColumnSpec) -> Any:
    """The pydantic type of one signature column (numbers as the module's doc says)."""
    python_type: Any = MLFLOW_TYPES.get(column.type, Any)
    if column.type in ("double", "float"):
        number: Any = Annotated[float, Field(allow_inf_nan=False, ge=-FLOAT_BOUND, le=FLOAT_BOUND)]
        check = _number_not_bool("number")
    elif column.type in INTEGER_BOUNDS:
        low, high = INTEGER_BOUNDS[column.type]
        number = Annotated[int, Field(ge=low, le=high)]
        check = _number_not_bool("integer")
    else:
        return python_type if column.required else python_type | None
    if column.required:
        return Annotated[number, BeforeValidator(check)]
    return Annotated[number | None, BeforeValidator(_nan_is_missing(check))]


def row_model(model: str, columns: list[ColumnSpec] | None) -> type[BaseModel]:
    """One instance (row) of the model's input: a field per signature column, unknown fields forbidden.

    Column names need not be Python identifiers (`Air temperature [K]`): fields are aliased to them."""
    if columns is None:  # no signature: any mapping of column -> value
        return create_model(_class_name(model, "Row"), __config__=ConfigDict(extra="allow"))
    fields: dict[str, Any] = {}
    for i, column in enumerate(columns):
        python_type = field_type(column)
        if column.required:
            fields[f"f{i}"] = (python_type, Field(..., alias=column.name, description=column.type))
        else:
            fields[f"f{i}"] = (python_type, Field(None, alias=column.name, description=column.type))
    return create_model(
        _class_name(model, "Row"), __config__=ConfigDict(extra="forbid", populate_by_name=False), **fields
    )


def batch_model(model: str, row: type[BaseModel], max_batch_size: int) -> type[BaseModel]:
    """`{"instances": [row, ...]}` with 1..max_batch_size rows."""
    return create_model(
        _class_name(model, "PredictRequest"),
        __config__=ConfigDict(extra="forbid"),
        instances=(list[row], Field(..., min_length=1, max_length=max_batch_size)),  # type: ignore[valid-type]
        explain=(
            StrictBool,  # true or false only: 0 or "no" would be a schema-violating request accepted
            Field(
                False,
                description="Also return each prediction's top feature contributions (linear and tree models; "
                "docs/mlops.md#explanations).",
            ),
        ),
    )


UNICODE_MESSAGE = "not valid Unicode: a lone surrogate (a \\uD800-\\uDFFF escape without its pair); send UTF-8 text"


def check_unicode(payload: Any) -> None:
    """InvalidInput (422) naming the first string or key of a decoded body that is not valid Unicode.

    json.loads (FastAPI's decoder, and ours when orjson refuses a body) turns `"\\ud800"` into a str that cannot be
    encoded: answered 200, it went to the prediction log as JSON that DuckDB refuses, and from then on
    `json_extract_string(inputs, ...)` failed for the whole table. orjson refuses such strings, in C: the walk that
    finds the field runs only when it does."""
    try:
        orjson.dumps(payload)
        return
    except orjson.JSONEncodeError:  # a lone surrogate, or an integer beyond 64 bits (fine here)
        pass
    path = _first_invalid_text(payload, "")
    if path is not None:
        raise InvalidInput([{"field": path or "body", "message": UNICODE_MESSAGE, "type": "string_unicode"}])


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_invalid_text(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return None if _is_unicode(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            named = key if _is_unicode(key) else key.encode("utf-8", "backslashreplace").decode()
            inner = f"{path}.{named}" if path else named
            if named is not key:
                return inner
            found = _first_invalid_text(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_invalid_text(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


# -- responses -----------------------------------------------------------------------------------------------


class Health(BaseModel):
    status: str
    models: dict[str, int] = Field(default_factory=dict, description="Served model -> version.")
    errors: dict[str, str] = Field(default_factory=dict, description="Models that failed to load, and why.")
    reload_errors: dict[str, str] = Field(
        default_factory=dict,
        description="Hot reloads that failed (`registry` when it cannot be read): the old version keeps serving.",
    )


class ModelSummary(BaseModel):
    name: str
    version: int
    alias: str
    flavor: str
    loaded_at: datetime


class ModelDetail(ModelSummary):
    description: str | None = None
    run_id: str | None = None
    metric: str | None = Field(None, description="The selection metric agreed with the business.")
    score: float | None = Field(None, description="The version's selection score on validation.")
    threshold: float | None = Field(None, description="Score at or above which the label is true.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Validation metrics of the version's run.")
    input_schema: list[dict[str, Any]] | None = Field(None, description="Columns: name, MLflow type, required.")
    input_json_schema: dict[str, Any] | None = None
    promoted_at: datetime | None = Field(None, description="When the version became champion (promotion history).")
    promoted_by: str | None = None
    promotion_reason: str | None = None


class Contribution(BaseModel):
    feature: str
    value: Any = Field(description="The instance's value of the feature (null when missing).")
    contribution: float = Field(description="Its share of the model's output, in the explanation's unit.")


class Explained(BaseModel):
    method: str = Field(description="How contributions are computed (coefficient x standardised value, decision path).")
    unit: str = Field(
        description="log-odds, probability, or target (a regressor's unit): bias + every contribution = the output."
    )


class Prediction(BaseModel):
    prediction_id: str = Field(description="A unique id (uuid4) to join feedback on.")
    model: str
    version: int
    prediction: Any = Field(description="The label (classifiers with a threshold) or the model's raw output.")
    score: float | None = Field(None, description="Probability of the positive class, when the model gives one.")
    contributions: list[Contribution] | None = Field(
        None, description="With `explain: true`: the features that moved this score most, largest first."
    )
    bias: float | None = Field(None, description="With `explain: true`: the model's output before any feature.")


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Prediction]
    explanation: Explained | None = Field(None, description="With `explain: true`: how contributions read.")


class PredictRequestExample(BaseModel):
    """The generic shape; each model's own schema (types, required fields) is at GET /v1/models/{name}."""

    model_config = ConfigDict(extra="forbid")
    instances: list[dict[str, Any]] = Field(min_length=1)
