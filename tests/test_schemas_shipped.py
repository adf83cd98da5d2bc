"""A JSON Schema for every YAML kind: current with the models, referenced by every shipped and scaffolded file through
a relative path that exists, written by `foundation init`, and carried by the wheel."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from foundation.core.json_schemas import SCHEMA_DIR, SCHEMAS, render
from foundation.scaffold.render import UsecaseAnswers, usecase_files
from foundation.scaffold.writer import init_workspace

REPO = Path(__file__).resolve().parents[1]
SCHEMA_LINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")
# Where each kind lives in a workspace, relative to its root.
KINDS = {
    "source": "usecases/*/sources/*.yaml",
    "model": "usecases/*/ml/*.yaml",
    "kpi": "usecases/*/kpis/*.yaml",
    "usecase": "usecases/*/usecase.yaml",
    "foundation": "foundation.yaml",
}


def schema(name: str, folder: Path = SCHEMA_DIR) -> dict[str, Any]:
    return json.loads((folder / f"{name}.schema.json").read_text())


def referenced_schema(path: Path) -> Path:
    """The schema file a YAML file's first line points at, resolved against the file's folder."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = SCHEMA_LINE.match(first)
    assert match, f"{path}: the first line must be '# yaml-language-server: $schema=<relative path>'"
    target = match.group(1)
    assert "://" not in target, f"{path}: a relative path, not a URL ({target})"
    return (path.parent / target).resolve()


def files_of(root: Path) -> dict[str, list[Path]]:
    return {kind: sorted(root.glob(pattern)) for kind, pattern in KINDS.items()}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_shipped_schema_is_current(name: str) -> None:
    shipped = (SCHEMA_DIR / f"{name}.schema.json").read_text()
    assert shipped == render(name), "run `make schemas` and commit schemas/"


def test_every_shipped_yaml_points_at_its_schema_and_validates() -> None:
    found = files_of(REPO)
    assert {kind: len(paths) >= 1 for kind, paths in found.items()} == dict.fromkeys(KINDS, True)
    assert len(found["kpi"]) >= 9
    for kind, paths in found.items():
        for path in paths:
            assert referenced_schema(path) == (SCHEMA_DIR / f"{kind}.schema.json").resolve(), path
            jsonschema.validate(yaml.safe_load(path.read_text()), schema(kind))


@pytest.mark.parametrize(
    ("kind", "path", "change"),
    [
        ("source", "usecases/fleet_maintenance/sources/trucks.yaml", lambda d: d["extract"].update(delimitr=";")),
        ("kpi", "usecases/fleet_maintenance/kpis/fleet_availability.yaml", lambda d: d.update(dimension=["x"])),
        ("kpi", "usecases/fleet_maintenance/kpis/fleet_availability.yaml", lambda d: d.pop("expression")),
        ("foundation", "foundation.yaml", lambda d: d["lakehouse"].update(rooot="x")),
        ("foundation", "foundation.yaml", lambda d: d["profiles"]["production"].update(lakehous={})),
        ("usecase", "usecases/fleet_maintenance/usecase.yaml", lambda d: d.update(type="dashboard")),
    ],
)
def test_a_schema_rejects_a_typo(kind: str, path: str, change: Any) -> None:
    document = yaml.safe_load((REPO / path).read_text())
    change(document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema(kind))


def test_a_kpi_that_extends_another_needs_only_its_id() -> None:
    kpi = schema("kpi")
    jsonschema.validate({"id": "failure_rate_eu", "extends": "failure_rate", "model": "fct_eu"}, kpi)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": "failure_rate_eu", "model": "fct_eu"}, kpi)


def test_init_writes_the_schemas_its_files_point_at(tmp_path: Path) -> None:
    root = tmp_path / "acme"
    init_workspace(root)
    assert sorted(p.name for p in (root / "schemas").iterdir()) == sorted(f"{n}.schema.json" for n in SCHEMAS)
    for name in SCHEMAS:
        assert (root / "schemas" / f"{name}.schema.json").read_text() == render(name)
    found = files_of(root)
    assert all(found.values()), found  # the example use case has one file of every kind
    for kind, paths in found.items():
        for path in paths:
            assert referenced_schema(path) == (root / "schemas" / f"{kind}.schema.json").resolve(), path
            jsonschema.validate(yaml.safe_load(path.read_text()), schema(kind, root / "schemas"))


def test_a_new_use_case_points_at_the_workspace_schemas(tmp_path: Path) -> None:
    root = tmp_path / "acme"
    init_workspace(root)
    answers = UsecaseAnswers(name="churn", type="prediction", owner="a@example.com", question="Who will leave?")
    for relative, text in usecase_files(answers).items():
        if relative.endswith(".yaml"):
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            assert referenced_schema(path).is_file(), relative


def test_the_wheel_carries_the_schemas(tmp_path: Path) -> None:
    subprocess.run(["uv", "build", "--wheel", "-q", "-o", str(tmp_path)], cwd=REPO, check=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in SCHEMAS:
        assert f"foundation/schemas/{name}.schema.json" in names
