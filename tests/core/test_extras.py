"""Deployment-only drivers are the `postgres` extra; asking for their feature without them names the extra."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

from foundation.core.extras import EXTRAS, MissingExtraError, missing_extra, require_extra

REPO = Path(__file__).resolve().parents[2]


def hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))


def test_the_postgres_drivers_are_an_extra_not_core_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = " ".join(project["dependencies"])
    postgres = " ".join(project["optional-dependencies"]["postgres"])
    for distribution in ("dagster-postgres", "psycopg2-binary", "adbc-driver-postgresql"):
        assert distribution not in core
        assert distribution in postgres
    for module in EXTRAS["postgres"]:
        assert importlib.util.find_spec(module) is not None, f"the dev environment lacks {module}"


def test_an_installed_module_needs_nothing():
    assert missing_extra("psycopg2", "postgres", "x") is None
    require_extra("psycopg2", "postgres", "x")


def test_a_missing_driver_names_the_extra_and_the_feature(monkeypatch):
    hide(monkeypatch, "psycopg2")
    with pytest.raises(MissingExtraError) as raised:
        require_extra("psycopg2", "postgres", "the MLflow store postgresql://...")
    message = str(raised.value)
    assert "the MLflow store postgresql://..." in message
    assert "data-foundation[postgres]" in message


def test_dagster_on_postgres_without_its_driver_says_which_extra(monkeypatch, tmp_path):
    from foundation.core.workspace import Workspace
    from foundation.dagster_defs.instance import DagsterInstanceError, prepare_home

    (tmp_path / "foundation.yaml").write_text("dagster:\n  storage: postgres\n", encoding="utf-8")
    (tmp_path / "usecases").mkdir()
    hide(monkeypatch, "dagster_postgres")
    with pytest.raises(DagsterInstanceError, match=r"dagster\.storage: postgres needs dagster_postgres.*\[postgres\]"):
        prepare_home(Workspace.open(tmp_path))
