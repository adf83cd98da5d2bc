"""The layers of docs/architecture.md cover every package, so a new folder cannot escape the import contracts."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT_PACKAGES = ["foundation", "kpi_catalog", "mlops", "serving"]


def contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(comment_prefixes=(";", "#"), inline_comment_prefixes=None)
    parser.read(REPO / ".importlinter")
    return parser


def layer_modules(section: configparser.SectionProxy) -> set[str]:
    container = section.get("containers", "").strip()
    modules = set()
    for line in section["layers"].strip().splitlines():
        for name in re.split(r"[|:]", line):
            name = name.strip()
            if name:
                modules.add(f"{container}.{name}" if container else name)
    return modules


def packages_under(parent: Path, dotted: str) -> set[str]:
    return {
        f"{dotted}.{child.name}" for child in parent.iterdir() if child.is_dir() and (child / "__init__.py").exists()
    }


def test_every_package_of_foundation_and_the_other_roots_sits_in_a_layer():
    layered = layer_modules(contracts()["importlinter:contract:layers"])
    expected = packages_under(REPO / "foundation", "foundation") | set(ROOT_PACKAGES[1:])
    assert expected - layered == set(), "place the new package in a layer of .importlinter and docs/architecture.md"
    assert layered - expected == set(), "a layer names a package that does not exist"


def test_no_module_sits_loose_at_the_top_of_foundation():
    loose = sorted(p.name for p in (REPO / "foundation").glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"put {loose} in the folder of its layer (docs/architecture.md#layers)"


def test_every_package_of_the_engine_sits_in_an_engine_layer():
    layered = layer_modules(contracts()["importlinter:contract:engine"])
    expected = packages_under(REPO / "foundation" / "engine", "foundation.engine")
    expected |= {f"foundation.engine.{p.stem}" for p in (REPO / "foundation" / "engine").glob("*.py")}
    expected.discard("foundation.engine.__init__")
    assert expected - layered == set()


def test_the_architecture_page_draws_every_layer():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    for module in layer_modules(contracts()["importlinter:contract:layers"]):
        assert module.replace(".", "/") + "/" in page, f"docs/architecture.md#layers does not show {module}"
