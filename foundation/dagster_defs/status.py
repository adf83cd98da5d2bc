"""What `foundation status` and `foundation quality` read from the workspace's Dagster instance: the last refresh of
each layer, stale assets, failing checks (ingestion rules, dbt tests, ML monitoring), the daemon's heartbeat and
the next ticks. Pure functions decide; the `read_*` functions are the I/O edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from croniter import croniter

from foundation.core.workspace import Workspace, load_model_specs
from foundation.dagster_defs.automation import automation_sensor_name
from foundation.dagster_defs.instance import dagster_home, dagster_instance
from foundation.engine.notifications import open_incidents

LAYERS = ("bronze", "staging", "marts", "features", "kpis", "gold", "ml")
DAEMON_ALIVE_S = 120  # a heartbeat older than this: the daemon is not running
MONITORING_CHECKS = ("feature_drift", "realised_performance")


@dataclass(frozen=True)
class CheckResult:
    """The latest evaluation of one asset check."""

    asset: str
    check: str
    passed: bool
    severity: str  # error | warn
    checked_at: float
    observed: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "check": self.check,
            "passed": self.passed,
            "severity": self.severity,
            "checked_at": _iso(self.checked_at),
            "observed": self.observed,
        }


@dataclass
class UsecaseStatus:
    usecase: str
    layers: list[dict[str, Any]] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)
    failing_checks: list[CheckResult] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)  # open ones (foundation/engine/notifications)
    next_ticks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not [c for c in self.failing_checks if c.severity == "error"] and not self.incidents

    def to_dict(self) -> dict[str, Any]:
        return {
            "usecase": self.usecase,
            "ok": self.ok,
            "layers": self.layers,
            "stale": self.stale,
            "failing_checks": [c.to_dict() for c in self.failing_checks],
            "incidents": self.incidents,
            "next_ticks": self.next_ticks,
        }


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds") if timestamp else None


def key_text(key: dg.AssetKey) -> str:
    return "/".join(key.path)


def layer_of(key: dg.AssetKey) -> str:
    """`<uc>/<layer>/...` is the naming of every foundation asset."""
    return key.path[1] if len(key.path) > 1 else "-"


# -- pure decisions ---------------------------------------------------------------------------------------------------


def layer_summary(keys: Iterable[dg.AssetKey], materialized: Mapping[dg.AssetKey, float | None]) -> list[dict]:
    """Per layer, in data-flow order: the last successful refresh, and how many assets never ran."""
    by_layer: dict[str, list[dg.AssetKey]] = {}
    for key in keys:
        by_layer.setdefault(layer_of(key), []).append(key)
    rows = []
    for layer in sorted(by_layer, key=lambda name: LAYERS.index(name) if name in LAYERS else len(LAYERS)):
        times = [materialized.get(k) for k in by_layer[layer]]
        done = [t for t in times if t]
        rows.append(
            {
                "layer": layer,
                "assets": len(times),
                "never_run": len(times) - len(done),
                "last_refresh": _iso(max(done)) if done else None,
                "oldest_refresh": _iso(min(done)) if done else None,
            }
        )
    return rows


def last_cron_tick(cron: str, now: datetime) -> datetime:
    return croniter(cron, now).get_prev(datetime)


def next_cron_tick(cron: str, now: datetime) -> datetime:
    return croniter(cron, now).get_next(datetime)


def stale_assets(
    parents: Mapping[dg.AssetKey, Iterable[dg.AssetKey]],
    materialized: Mapping[dg.AssetKey, float | None],
    crons: Mapping[dg.AssetKey, str],
    fail_windows: Mapping[dg.AssetKey, timedelta],
    now: datetime,
) -> list[dict[str, Any]]:
    """Assets behind their inputs (an input refreshed after them; for an asset on a cron, only once a tick has
    passed since), and sources older than their freshness policy's fail window."""
    stale = []
    for key, ups in parents.items():
        own = materialized.get(key)
        window = fail_windows.get(key)
        if window is not None and own and datetime.fromtimestamp(own, UTC) < now - window:
            stale.append({"asset": key_text(key), "reason": f"last load older than {window}"})
            continue
        newer = [p for p in ups if (materialized.get(p) or 0) > (own or 0)]
        if not newer:
            continue
        newest = max(materialized[p] or 0 for p in newer)
        cron = crons.get(key)
        if cron and last_cron_tick(cron, now).timestamp() < newest:
            continue  # due at its next tick, not late
        reason = f"{key_text(newer[0])} refreshed after it" + (f" (+{len(newer) - 1} more)" if len(newer) > 1 else "")
        stale.append({"asset": key_text(key), "reason": reason if own else "never ran; its inputs exist"})
    return sorted(stale, key=lambda s: s["asset"])


def daemon_state(heartbeats: Mapping[str, float], now: float) -> dict[str, Any]:
    latest = max(heartbeats.values(), default=None)
    running = latest is not None and now - latest < DAEMON_ALIVE_S
    return {
        "running": running,
        "last_heartbeat": _iso(latest),
        "daemons": sorted(heartbeats),
        "hint": None if running else "start it with `foundation daemon` (README, 'Run it unattended')",
    }


def _metadata_text(metadata: Mapping[str, Any]) -> str:
    parts = []
    for name, value in metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, str | int | float) and name not in {"stage", "severity"}:
            parts.append(f"{name}={raw:.3g}" if isinstance(raw, float) else f"{name}={raw}")
    return ", ".join(parts[:4])


# -- the I/O edge -----------------------------------------------------------------------------------------------------


def read_materializations(instance: dg.DagsterInstance, keys: list[dg.AssetKey]) -> dict[dg.AssetKey, float | None]:
    latest = instance.get_latest_materialization_events(keys)
    return {key: (event.timestamp if event else None) for key, event in latest.items()}


def read_checks(instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey]) -> list[CheckResult]:
    """The latest evaluation of each check; one planned and not evaluated (its run is going, or stopped before it)
    is a warning."""
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    results = []
    for check_key, record in records.items():
        evaluation = record.event.asset_check_evaluation if record.event else None
        if evaluation is None:
            if record.status.value != "PLANNED":
                continue
            results.append(
                CheckResult(
                    key_text(check_key.asset_key),
                    check_key.name,
                    False,
                    "warn",  # its run is still going, or stopped before the check: the run tells which
                    record.create_timestamp,
                    "not evaluated yet: its run is in progress or stopped before it",
                )
            )
            continue
        severity = "warn" if evaluation.severity == dg.AssetCheckSeverity.WARN else "error"
        results.append(
            CheckResult(
                key_text(check_key.asset_key),
                check_key.name,
                evaluation.passed,
                severity,
                record.create_timestamp,
                _metadata_text(evaluation.metadata or {}),
            )
        )
    return sorted(results, key=lambda c: (c.asset, c.check))


def read_open_incidents(workspace: Workspace, usecase: str) -> list[dict[str, Any]]:
    """Open incidents of a use case, from the alerts' incident store (foundation/engine/notifications)."""

    return [i for i in open_incidents(workspace) if i.get("usecase") == usecase]


def monitoring_check_keys(workspace: Workspace) -> list[tuple[str, dg.AssetCheckKey]]:
    """(use case, check key) of every model's monitoring checks, from the model specs alone (no definitions)."""

    keys = []
    for ref in load_model_specs(workspace.root).models:
        asset = dg.AssetKey([ref.usecase, "ml", ref.spec.name, "monitoring"])
        keys += [(ref.usecase, dg.AssetCheckKey(asset, name)) for name in MONITORING_CHECKS]
    return keys


def ml_check_results(workspace: Workspace, usecases: set[str] | None = None) -> list[tuple[str, CheckResult]]:
    """The latest ML monitoring results (drift, realised performance) recorded in the workspace's instance."""
    keys = [(uc, k) for uc, k in monitoring_check_keys(workspace) if usecases is None or uc in usecases]

    if not keys or not (dagster_home(workspace) / "dagster.yaml").is_file():
        return []  # no model, or nothing ever ran on this workspace's instance

    with dagster_instance(workspace) as instance:
        results = read_checks(instance, [k for _, k in keys])
    usecase_of = {key_text(k.asset_key): uc for uc, k in keys}
    return [(usecase_of[r.asset], r) for r in results]


def platform_status(workspace: Workspace, usecase: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Everything `foundation status` shows, for one use case or all."""
    # lazy: the full definitions (dagster-dbt, the dbt engine, the ML modules) only for `foundation status`, not for
    # the ML check results `foundation quality` reads from this module
    from foundation.dagster_defs.definitions import build_definitions

    now = now or datetime.now(UTC)
    defs = build_definitions(workspace=workspace)
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable]
    usecases = sorted({k.path[0] for k in keys})
    if usecase is not None:
        if usecase not in usecases:
            raise LookupError(f"no use case named {usecase!r}; known: {', '.join(usecases)}")
        usecases = [usecase]
    with dagster_instance(workspace) as instance:
        materialized = read_materializations(instance, keys)
        checks = read_checks(instance, [c for c in graph.asset_check_keys if c.asset_key.path[0] in usecases])
        heartbeats = {str(t): h.timestamp for t, h in instance.get_daemon_heartbeats().items()}
    crons: dict[dg.AssetKey, str] = {}
    windows: dict[dg.AssetKey, timedelta] = {}
    for key in keys:
        node = graph.get(key)
        label = node.automation_condition.get_label() if node.automation_condition else None
        if label and label.startswith("on_cron("):
            crons[key] = label[len("on_cron(") :].split(",")[0]
        policy = node.freshness_policy
        fail = getattr(policy, "fail_window", None)
        if fail is not None:
            windows[key] = fail.to_timedelta()
    interval = workspace.settings.automation.sensor_interval_s
    report = []
    for uc in usecases:
        own = [k for k in keys if k.path[0] == uc]
        parents = {k: [p for p in graph.get(k).parent_keys if p in materialized] for k in own}
        status = UsecaseStatus(uc)
        status.layers = layer_summary(own, materialized)
        status.stale = stale_assets(parents, materialized, crons, windows, now)
        status.failing_checks = [c for c in checks if not c.passed and c.asset.split("/")[0] == uc]
        status.incidents = read_open_incidents(workspace, uc)
        for schedule in defs.schedules or []:
            if schedule.name.startswith(f"{uc}__"):
                tick = next_cron_tick(schedule.cron_schedule, now)  # type: ignore[arg-type]
                status.next_ticks.append({"name": schedule.name, "kind": "schedule", "next": tick.isoformat()})
        for key, cron in crons.items():
            if key.path[0] == uc:
                tick = next_cron_tick(cron, now)
                status.next_ticks.append({"name": key_text(key), "kind": "on_cron", "next": tick.isoformat()})
        for sensor in defs.sensors or []:
            if sensor.name.startswith(f"{uc}__"):
                every = f"every {sensor.minimum_interval_seconds} s"
                status.next_ticks.append({"name": sensor.name, "kind": "sensor", "next": every})
        status.next_ticks.sort(key=lambda t: t["next"])
        report.append(status)
    return {
        "ok": all(s.ok for s in report),
        "checked_at": now.isoformat(timespec="seconds"),
        "daemon": daemon_state(heartbeats, now.timestamp()),
        "automation": {
            "sensors": [automation_sensor_name(uc) for uc in usecases],
            "every_s": interval,
            "policy": workspace.settings.automation.policy,
        },
        "usecases": [s.to_dict() for s in report],
    }
