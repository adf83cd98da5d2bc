"""The quality report of `foundation quality`: the latest result of every rule per source (freshness measured again
now), and every model's latest monitoring checks, as rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.lakehouse.bronze import BronzeTable
from foundation.engine.quality.checks import declared_checks
from foundation.engine.quality.gate import evaluate_table_outcomes
from foundation.engine.quality.results import latest_results
from foundation.specs.rules import FreshnessRule


def _now_row(source: SourceRef, outcome: Any, now: datetime) -> dict[str, Any]:
    return {
        "source": source.key,
        "usecase": source.usecase,
        "load_id": None,
        "checked_at": now,
        **{k: v for k, v in outcome.to_dict().items() if k != "check"},
        "check": outcome.check,
    }


def quality_report(workspace: Workspace, sources: list[SourceRef]) -> list[dict[str, Any]]:
    """Latest stored result per (source, check); freshness is measured again now, since time passes."""
    now = datetime.now(UTC)
    keys = {s.key for s in sources}
    rows = [r for r in latest_results(workspace) if r["source"] in keys]
    for source in sources:
        bronze = BronzeTable(workspace.bronze_uri(source.usecase, source.name))
        if bronze.version() is None:
            if any(r["source"] == source.key for r in rows):
                continue  # a refused first load: its failed checks are the news
            rows.append(
                {
                    "source": source.key,
                    "usecase": source.usecase,
                    "check": "-",
                    "stage": "-",
                    "severity": "-",
                    "status": "not loaded",
                    "passed": False,
                    "failing": 0,
                    "observed": "no load yet: run `foundation ingest`",
                    "checked_at": None,
                    "sample": [],
                }
            )
            continue
        fresh = [c for c in declared_checks(source.spec) if isinstance(c.rule, FreshnessRule)]
        if fresh:
            outcomes = evaluate_table_outcomes(workspace, source, fresh, now, bronze.last_load_at())
            names = {o.check for o in outcomes}
            rows = [r for r in rows if not (r["source"] == source.key and r["check"] in names)]
            rows.extend(_now_row(source, o, now) for o in outcomes)
    order = {s.key: i for i, s in enumerate(sources)}
    rows.sort(key=lambda r: (order[r["source"]], r["check"]))
    return rows


def ml_monitoring_rows(workspace: Workspace, usecases: set[str] | None = None) -> list[dict[str, Any]]:
    """The latest ML monitoring checks (feature drift, realised performance) of every model, as quality rows: read
    from the Dagster instance that recorded them (`foundation run`, the daemon)."""
    from foundation.dagster_defs.status import ml_check_results  # lazy: dagster (seconds), only with models

    rows = []
    for usecase, result in ml_check_results(workspace, usecases):
        status = "pass" if result.passed else ("warn" if result.severity == "warn" else "fail")
        rows.append(
            {
                "source": result.asset,
                "usecase": usecase,
                "load_id": None,
                "check": result.check,
                "stage": "ml monitoring",
                "severity": result.severity,
                "status": status,
                "passed": result.passed,
                "failing": 0,
                "observed": result.observed,
                "checked_at": datetime.fromtimestamp(result.checked_at, UTC),
                "sample": [],
            }
        )
    return rows


def red_monitoring_checks(workspace: Workspace, usecases: set[str] | None = None) -> list[dict[str, Any]]:
    """The ML monitoring checks whose latest result failed: what a run that otherwise succeeded must still say."""
    return [r for r in ml_monitoring_rows(workspace, usecases) if r["status"] == "fail"]
