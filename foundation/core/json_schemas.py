"""JSON Schemas of every YAML file of a workspace, generated from the pydantic models, for editors
(yaml-language-server) and for other tools.

`make schemas` (`python -m foundation.core.json_schemas`) rewrites the repository's `schemas/*.schema.json`, and a
test fails when they are stale; `foundation init` writes the same files into a new platform's `schemas/`, which its
YAML files reference by a relative path (`# yaml-language-server: $schema=../../../schemas/kpi.schema.json`).
The schemas live under `core` because `foundation.yaml`'s model (FoundationSettings) does.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from foundation.core.settings import FoundationSettings
from foundation.core.settings_profiles import PROFILES_KEY
from foundation.core.workspace import SCHEMAS_DIR
from foundation.specs.kpi import KpiSpec
from foundation.specs.model import ModelSpec
from foundation.specs.source import SourceSpec
from foundation.specs.usecase import UsecaseSpec

SCHEMA_DIR = Path(__file__).resolve().parents[2] / SCHEMAS_DIR  # this repository's
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
Schema = dict[str, Any]


def _kpi(schema: Schema) -> Schema:
    """A KPI that `extends:` another declares only what differs; any other is simple, complex or a model KPI."""
    required = schema.pop("required")
    schema["if"] = {"required": ["extends"]}
    schema["then"] = {"required": ["id", "extends"]}
    schema["else"] = {
        "required": required,
        "anyOf": [
            {"required": ["model", "expression"]},  # `time` too, or none: one value per refresh
            {"required": ["sql"]},
            {"required": ["predictions"]},
        ],
    }
    return schema


def _settings(schema: Schema) -> Schema:
    """foundation.yaml also holds `profiles:`: each an overlay of the same sections, merged over the base."""
    sections = {k: copy.deepcopy(v) for k, v in schema["properties"].items()}
    for section in sections.values():
        section.pop("default", None)
    schema["properties"][PROFILES_KEY] = {
        "title": "Profiles",
        "description": "Settings profiles (`--profile NAME`, FOUNDATION_PROFILE): each overlays the sections above "
        "it sets, deep-merged over the base settings (docs/operations.md).",
        "type": "object",
        "additionalProperties": {"type": "object", "properties": sections, "additionalProperties": False},
    }
    return schema


# name -> (model, adjustment the model cannot express)
SCHEMAS: dict[str, tuple[type[BaseModel], Callable[[Schema], Schema] | None]] = {
    "source": (SourceSpec, None),
    "usecase": (UsecaseSpec, None),
    "model": (ModelSpec, None),
    "kpi": (KpiSpec, _kpi),
    "foundation": (FoundationSettings, _settings),
}


def json_schema(name: str) -> Schema:
    model, adjust = SCHEMAS[name]
    schema = model.model_json_schema(by_alias=True, mode="validation")
    if adjust is not None:
        schema = adjust(schema)
    schema["$schema"] = SCHEMA_DIALECT
    return schema


def render(name: str) -> str:
    return json.dumps(json_schema(name), indent=2, sort_keys=True) + "\n"


def schema_files() -> dict[str, str]:
    """{path in a workspace: text} of every schema, e.g. {"schemas/kpi.schema.json": ...}."""
    return {f"{SCHEMAS_DIR}/{name}.schema.json": render(name) for name in SCHEMAS}


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for relative, text in schema_files().items():
        path = folder / Path(relative).name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas():
        print(path)
