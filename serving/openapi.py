"""The OpenAPI document: FastAPI's, made a contract a client can build on.

- Each served model gets its own routes (`/v1/models/fleet__risk`, `.../predict`, `.../invocations`) typed from its
  MLflow signature (serving.schemas): field types, required fields, `additionalProperties: false`, and an example
  row from the input example logged with the model. The `{name}` templates stand for them and are left out.
- `securitySchemes` for the key header and bearer (unless the API is open).
- Every status an operation can answer is listed with the one error body (serving.errors.ErrorBody).

Built per request of `/openapi.json` from the models served at that moment (a hot reload changes it); cheap.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serving.errors import ErrorBody
from serving.key_openapi import by_key_paths
from serving.loaded_models import ServedModel
from serving.scoring import MODEL_HEADER, default_model

SECURITY_SCHEMES = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "BearerKey": {"type": "http", "scheme": "bearer", "description": "The same API key, as a bearer token."},
}
MODEL_PREFIX = "/v1/models/{name}"
OPEN_PATHS = ("/health/",)

STATUS_MEANING = {
    "400": "Several models are served and none is named: send the X-Model-Name header (or set api.default_model).",
    "401": "No API key, or an unknown one.",
    "403": "This API key may not use this model.",
    "404": "No such model (or KPI) is served.",
    "413": "The request body is over api.max_body_bytes.",
    "422": "The request does not fit the schema: `errors` names each bad field.",
    "500": "The server failed; its log has the error under `request_id`.",
    "503": "The models are not loaded yet (see /health/ready), or predictions cannot be logged.",
}


def statuses_of(path: str, method: str, operation: dict[str, Any], secured: bool) -> list[str]:
    """Pure: the error statuses an operation can answer (2xx are FastAPI's)."""
    found = {"500"}
    if secured:
        found.add("401")
    if "requestBody" in operation:
        found |= {"413", "422"}
    if operation.get("parameters"):
        found.add("422")
    if path.startswith("/v1/models/") or path == "/invocations":  # one model's routes
        found |= {"403", "404", "503"}
    if path == "/invocations":
        found.add("400")
    if path.startswith("/v1/kpis/"):
        found.add("404")
    return sorted(found)


def error_response(status: str) -> dict[str, Any]:
    return {
        "description": STATUS_MEANING[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def document_errors(schema: dict[str, Any], secured: bool) -> None:
    """Every operation's error statuses, with the one error body; FastAPI's own 422 schema replaced."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components["ErrorBody"] = error_schema
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            is_secured = secured and not path.startswith(OPEN_PATHS)
            responses = operation.setdefault("responses", {})
            query_without_null(operation)
            responses.pop("422", None)  # FastAPI's, for the operations it had: ours below where it applies
            for status in statuses_of(path, method, operation, is_secured):
                responses[status] = error_response(status)
            if is_secured:
                operation["security"] = [{"ApiKeyHeader": []}, {"BearerKey": []}]
    if secured:
        schema["components"]["securitySchemes"] = SECURITY_SCHEMES


def query_without_null(operation: dict[str, Any]) -> None:
    """An optional query parameter is absent or a string: FastAPI's `anyOf: [string, null]` for `str | None` says a
    `null` that no query string can carry (and fuzzers then send `null`, `true` or arrays as 'invalid' text)."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        kinds = schema.get("anyOf", [])
        if parameter.get("in") == "query" and len(kinds) == 2 and {"type": "null"} in kinds:
            kept = next(kind for kind in kinds if kind != {"type": "null"})
            parameter["schema"] = {**{k: v for k, v in schema.items() if k != "anyOf"}, **kept}


def model_schemas(model: ServedModel) -> tuple[str, str, dict[str, Any]]:
    """(the request body's component name, the row's, the components the model adds), from its signature."""
    body = model.request_model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    components = body.pop("$defs", {})
    components[model.request_model.__name__] = body
    return model.request_model.__name__, model.row_model.__name__, components


def invocations_body(row: str) -> dict[str, Any]:
    """MLflow's protocol with this model's rows: `dataframe_records` or `instances` (the other MLflow formats are
    accepted too; see docs/api.md)."""
    rows = {"type": "array", "items": {"$ref": f"#/components/schemas/{row}"}, "minItems": 1}
    return {
        "oneOf": [
            {
                "type": "object",
                "properties": {"dataframe_records": rows},
                "required": ["dataframe_records"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"instances": rows},
                "required": ["instances"],
                "additionalProperties": False,
            },
        ]
    }


def model_paths(template_paths: dict[str, Any], model: ServedModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the model's own paths, copied from the `{name}` templates with its schemas, the components they use)."""
    body, row, components = model_schemas(model)
    example = {"instances": model.example_rows[:1]} if model.example_rows else None
    paths: dict[str, Any] = {}
    for template, item in template_paths.items():
        concrete = copy.deepcopy(item)
        for method, operation in concrete.items():
            operation["operationId"] = f"{operation.get('operationId', method)}__{model.name}"
            operation["summary"] = f"{model.name}: {operation.get('summary', '')}"
            operation["parameters"] = [p for p in operation.get("parameters", []) if p.get("name") != "name"]
            if not operation["parameters"]:
                del operation["parameters"]
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                continue
            if template.endswith("/predict"):
                content["schema"] = {"$ref": f"#/components/schemas/{body}"}
                if example is not None:
                    content["example"] = example
            elif template.endswith("invocations"):
                content["schema"] = invocations_body(row)
                if example is not None:
                    content["example"] = {"dataframe_records": example["instances"]}
            content.pop("examples", None)
        paths[template.replace("{name}", model.name)] = concrete
    return paths, components


def bare_invocations(template: dict[str, Any], models: dict[str, ServedModel], default: str | None) -> dict[str, Any]:
    """`/invocations`: typed as the model it scores without a header (the only one, or `api.default_model`); with
    several and no default, the `X-Model-Name` header is required and the body is any model's."""
    if default in models:
        return model_paths({"/invocations": template}, models[default])[0]["/invocations"]
    item = copy.deepcopy(template)
    for operation in item.values():
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "header" and parameter.get("name") == MODEL_HEADER:
                parameter["required"] = True
                parameter["schema"] = {"type": "string", "pattern": r"\S"}  # blank is no header: a 400
                parameter["description"] = f"The model to score: one of {', '.join(sorted(models))}."
    return item


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of `app` for the models it serves now."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    paths: dict[str, Any] = schema["paths"]
    templates = {p: paths.pop(p) for p in list(paths) if p.startswith(MODEL_PREFIX)}
    only = paths.pop("/invocations", None)
    models: dict[str, ServedModel] = app.state.models
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for _, model in sorted(models.items()):
        own, used = model_paths(templates, model)
        by_key_paths(own, used, model, app.state.lookups)
        paths.update(own)
        components.update(used)
    if only is not None and models:
        paths["/invocations"] = bare_invocations(only, models, default_model(app.state))
    document_errors(schema, secured=not app.state.settings.api.open)
    return schema
