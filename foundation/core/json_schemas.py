"""JSON Schemas of the YAML formats, generated from the pydantic models, for editors (yaml-language-server).

`python -m foundation.specs.jsonschema` rewrites `schemas/*.schema.json`; a test fails if they are stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from foundation.specs.model import ModelSpec
from foundation.specs.source import SourceSpec
from foundation.specs.usecase import UsecaseSpec

SCHEMAS: dict[str, type[BaseModel]] = {"source": SourceSpec, "usecase": UsecaseSpec, "model": ModelSpec}
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def json_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://data-foundation.dev/schemas/{name}.schema.json"
    return schema


def render(model: type[BaseModel], name: str) -> str:
    return json.dumps(json_schema(model, name), indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMAS.items():
        path = folder / f"{name}.schema.json"
        path.write_text(render(model, name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas():
        print(path)
