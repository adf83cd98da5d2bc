"""The JSON Schemas shipped for editors match the spec models and accept the shipped YAML."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from foundation.specs.jsonschema import SCHEMA_DIR, SCHEMAS, render

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_shipped_schema_is_current(name: str) -> None:
    shipped = (SCHEMA_DIR / f"{name}.schema.json").read_text()
    assert shipped == render(SCHEMAS[name], name), "run `make schemas` and commit schemas/"


def test_shipped_yaml_validates_against_the_schemas() -> None:
    source_schema = json.loads((SCHEMA_DIR / "source.schema.json").read_text())
    usecase_schema = json.loads((SCHEMA_DIR / "usecase.schema.json").read_text())
    sources = sorted(REPO.glob("usecases/*/sources/*.yaml"))
    assert len(sources) >= 5
    for path in sources:
        jsonschema.validate(yaml.safe_load(path.read_text()), source_schema)
    for path in REPO.glob("usecases/*/usecase.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), usecase_schema)


def test_schema_rejects_a_typo() -> None:
    schema = json.loads((SCHEMA_DIR / "source.schema.json").read_text())
    document = yaml.safe_load((REPO / "usecases/fleet_maintenance/sources/trucks.yaml").read_text())
    document["extract"]["delimitr"] = ";"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)
