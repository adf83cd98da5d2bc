"""Quality-rule test helpers: every load goes through `ingest`, which asserts that the load reconciles.

Reconciliation is checked twice: by the report's own arithmetic (rows read = landed + quarantined + dropped +
stale + superseded) and against what the lakehouse holds for the load id (bronze rows and quarantine rows), so
a row lost or counted twice fails the test that loaded it. `refused` runs a load that a rule must refuse and
checks that nothing was published.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from foundation.engine.ingest.report import LoadReport
from foundation.engine.ingest.runner import attempt_source
from foundation.engine.quality.outcomes import QualityGateError


def _table_exists(uri: str) -> bool:
    return (Path(uri) / "_delta_log").is_dir()


def assert_reconciles(kit: Any, name: str, report: LoadReport, usecase: str | None = None) -> None:
    """The report's counts add up, and the bronze and quarantine tables hold exactly what it says landed."""
    assert report.reconciles, report.to_dict()
    if report.status != "landed":
        return
    table = f"{usecase or kit.usecase}__{name}"
    landed = kit.query(f"SELECT count(*) AS n FROM bronze.\"{table}\" WHERE _load_id = '{report.load_id}'")[0]["n"]
    if report.mode != "merge":  # merge updates rewrite older rows' load ids too: the report's count is the check
        assert landed == report.rows_landed, (landed, report.to_dict())
    quarantined = 0
    if _table_exists(kit.quarantine_uri(name, usecase)):
        quarantined = kit.query(
            f"SELECT count(*) AS n FROM bronze.\"{table}__quarantine\" WHERE _load_id = '{report.load_id}'"
        )[0]["n"]
    assert quarantined == report.rows_quarantined, (quarantined, report.to_dict())
    check = next(c for c in report.checks if c["check"] == "rows_reconcile")
    assert check["passed"] and check["status"] == "pass", check


@pytest.fixture
def ingest() -> Callable[..., LoadReport]:
    """`ingest(kit, name[, usecase])`: one load that must reconcile; returns its report."""

    def run(kit: Any, name: str, usecase: str | None = None) -> LoadReport:
        report = kit.ingest(name, usecase)
        assert_reconciles(kit, name, report, usecase)
        return report

    return run


@pytest.fixture
def refused() -> Callable[..., QualityGateError]:
    """`refused(kit, name)`: a load a rule must refuse; asserts nothing was published and returns the error."""

    def run(kit: Any, name: str) -> QualityGateError:
        version = kit.version(name)
        rows = kit.count(name) if version is not None else None
        quarantine_uri = kit.quarantine_uri(name)
        quarantine_rows = len(kit.quarantine(name)) if _table_exists(quarantine_uri) else None
        attempt = attempt_source(kit.open(), kit.source(name))
        assert isinstance(attempt.error, QualityGateError), attempt.error
        assert kit.version(name) == version, "a refused load must not commit a new Delta version"
        if version is not None:
            assert kit.count(name) == rows
        assert (len(kit.quarantine(name)) if _table_exists(quarantine_uri) else None) == quarantine_rows
        # the failed attempt returns what the rules concluded (Dagster's asset checks), the refusing outcome included
        recorded = {o.check for o in attempt.outcomes}
        assert {o.check for o in attempt.error.outcomes} <= recorded
        return attempt.error

    return run


def outcome(report: LoadReport, check: str) -> dict[str, Any]:
    """The outcome dict of one check in a report (fails clearly when the check is missing)."""
    found = [c for c in report.checks if c["check"] == check]
    assert len(found) == 1, (check, [c["check"] for c in report.checks])
    return found[0]


@pytest.fixture
def check_of() -> Callable[[LoadReport, str], dict[str, Any]]:
    return outcome
