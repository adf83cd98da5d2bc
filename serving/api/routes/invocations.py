"""MLflow-compatible scoring: `POST /invocations` and `POST /v1/models/{name}/invocations`.

Accepts the bodies of MLflow's scoring server (`dataframe_split`, `dataframe_records`, `instances`, `inputs`) and
answers `{"predictions": [...]}` with what the model's pyfunc returns (for our classifiers, `predict_proba` rows),
so a client written for `mlflow models serve` works unchanged. `/invocations` serves the only model when exactly
one is served; with several, use the named route."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request

from serving.deps import AuthorizedModel, CurrentPrincipal, authorized_model, served_models
from serving.models import ServedModel
from serving.schemas import InvalidInput
from serving.scoring import claimed_rows
from serving.scoring import score as score_rows

router = APIRouter(tags=["invocations"])

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
BODY = Body(
    ...,
    description="Exactly one of `dataframe_split`, `dataframe_records`, `instances`, `inputs` (MLflow's protocol).",
    examples=[{"dataframe_split": {"columns": ["temp", "truck_type"], "data": [[97.5, "van"]]}}],
)


def _invalid(field: str, message: str, kind: str = "value_error") -> InvalidInput:
    return InvalidInput([{"field": field, "message": message, "type": kind}])


def records_of(payload: dict[str, Any]) -> tuple[str, Any]:
    """(the format used, its rows as a list of {column: value}); 422 naming the problem otherwise."""
    used = [k for k in FORMATS if k in payload]
    extra = sorted(k for k in payload if k not in FORMATS and k != "params")
    if extra:
        raise InvalidInput(
            [
                {"field": k, "message": f"unknown key; use one of {', '.join(FORMATS)}", "type": "extra_forbidden"}
                for k in extra
            ]
        )
    if len(used) != 1:
        raise _invalid("body", f"send exactly one of {', '.join(FORMATS)} (got {', '.join(used) or 'none'})")
    key = used[0]
    value = payload[key]
    if key == "dataframe_split":
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("columns"), list)
            or not isinstance(value.get("data"), list)
        ):
            raise _invalid(key, 'expected {"columns": [...], "data": [[...], ...]}')
        columns = value["columns"]
        rows = []
        for i, row in enumerate(value["data"]):
            if not isinstance(row, list) or len(row) != len(columns):
                raise _invalid(f"{key}.data[{i}]", f"expected a list of {len(columns)} values (one per column)")
            rows.append(dict(zip(columns, row, strict=True)))
        return key, rows
    if key == "inputs" and isinstance(value, dict):  # columnar: {column: [values]}
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise _invalid(key, "columnar inputs must map each column to a list of values of the same length")
        n = lengths.pop()
        return key, [{c: v[i] for c, v in value.items()} for i in range(n)]
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise _invalid(key, "expected a list of rows, each an object {column: value}")
    return key, value


async def score(request: Request, model: ServedModel, payload: dict[str, Any]) -> dict[str, Any]:
    key, rows = records_of(payload)
    raw, _ = await score_rows(
        request, model, lambda: model.validate({"instances": rows}, rename=key), claimed_rows(rows)
    )
    return {"predictions": raw}


@router.post("/v1/models/{name}/invocations", summary="MLflow scoring protocol, for one named model")
async def invocations_for(request: Request, model: AuthorizedModel, payload: dict[str, Any] = BODY) -> dict[str, Any]:
    return await score(request, model, payload)


@router.post("/invocations", summary="MLflow scoring protocol (the only served model)")
async def invocations(request: Request, principal: CurrentPrincipal, payload: dict[str, Any] = BODY) -> dict[str, Any]:
    names = sorted(served_models(request))
    if len(names) != 1:
        raise HTTPException(
            400,
            f"{len(names)} models are served ({', '.join(names) or 'none'}): use POST /v1/models/{{name}}/invocations",
        )
    return await score(request, authorized_model(request, principal, names[0]), payload)
