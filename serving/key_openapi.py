"""The OpenAPI of score-by-key and the batch predictions, per model (serving.openapi calls it for each model):
the `keys` body typed from the model's entity columns (serving.lookup), an example key the table holds, and the
entity columns as the query parameters of `GET .../predictions`. A model that cannot be scored by key (no model
spec, or a feature table that cannot be read) has neither route in its document: they would only answer 404/503."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from serving.loaded_models import ServedModel
from serving.lookup import FeatureIndex, FeatureLookups

BY_KEY = "/predict-by-key"
PREDICTIONS = "/predictions"


def by_key_paths(paths: dict[str, Any], components: dict[str, Any], model: ServedModel, lookups: Any) -> None:
    """Type (or leave out) the model's two routes in `paths`, its components into `components`."""
    index = _index(lookups, model)
    base = f"/v1/models/{model.name}"
    if index is None:
        paths.pop(base + BY_KEY, None)
        paths.pop(base + PREDICTIONS, None)
        return
    content = paths.get(base + BY_KEY, {}).get("post", {}).get("requestBody", {}).get("content", {})
    body = content.get("application/json")
    if body is not None:
        schema = index.request_model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[index.request_model.__name__] = schema
        body["schema"] = {"$ref": f"#/components/schemas/{index.request_model.__name__}"}
        body.pop("examples", None)
        if index.rows:
            first = min(index.rows, key=repr)
            body["example"] = {"keys": [dict(zip(index.keyed.entity, _json_key(first), strict=True))]}
    operation = paths.get(base + PREDICTIONS, {}).get("get")
    if operation is not None:
        operation["parameters"] = [*entity_parameters(index), *operation.get("parameters", [])]


def _index(lookups: FeatureLookups | None, model: ServedModel) -> FeatureIndex | None:
    if lookups is None:
        return None
    return lookups.indexes.get(model.name)


def _json_key(key: tuple[Any, ...]) -> list[Any]:
    return [v.isoformat() if hasattr(v, "isoformat") else v for v in key]


def entity_parameters(index: FeatureIndex) -> list[dict[str, Any]]:
    """Pure: one optional query parameter per entity column, with its key's JSON schema."""
    return [
        {
            "name": column,
            "in": "query",
            "required": False,
            "description": f"Only this {column}'s predictions.",
            "schema": TypeAdapter(kind).json_schema(),
        }
        for column, kind in index.entity_types.items()
    ]
