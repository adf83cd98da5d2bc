"""Fixtures of the crash tests (test_crash_points.py, test_kill_9.py), which run `foundation ingest` in subprocesses."""

from __future__ import annotations

import pytest
from crash_kit import BATCH_ROWS

from foundation.dagster_defs.instance import render_instance_yaml


@pytest.fixture(scope="session")
def dagster_home(tmp_path_factory) -> str:
    """One Dagster instance for every workspace here: a new one costs 4 s of SQLite set-up in its first CLI run."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(render_instance_yaml("sqlite", home), encoding="utf-8")
    return str(home)


@pytest.fixture
def crash_settings(dagster_home) -> dict:
    """Settings of the crash tests' workspaces (crash_kit.py)."""
    return {"ingest": {"batch_rows": BATCH_ROWS}, "dagster": {"home": dagster_home}}
