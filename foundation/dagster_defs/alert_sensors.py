"""Alert sensors: what Dagster records (failed runs, asset check evaluations, last materialisations) and the KPI
catalogue, turned into observations for the incident logic of foundation/notifications.

- `alerts_run_failure` / `alerts_run_success`: a failed run opens an incident on its target; a later successful run
  of the same target resolves it, and so do successful runs that together materialised again every asset the
  failed run left unmaterialised. A run that failed because a blocking check failed is left to that check's
  incident (one problem, one message).
- `alerts_health` (every `notifications.interval_s`): the latest evaluation of every blocking check (ingestion rules,
  dbt tests) and ML monitoring check, the ML gate's verdict, each source's last load against its freshness
  `error_after`, and each KPI's latest value against its alert threshold.

The sensors are RUNNING by default when `notifications.channels` declares a channel: the daemon alone alerts.
"""

# No `from __future__ import annotations` here: Dagster reads the sensor functions' annotations at runtime.

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from foundation.core.workspace import Workspace
from foundation.engine.notifications.incidents import Observation
from foundation.engine.notifications.service import process
from foundation.engine.notifications.store import IncidentStore
from kpi_catalog.catalogue import KpiCatalog

log = logging.getLogger("foundation.engine.notifications")

MONITORING_CHECKS = ("feature_drift", "realised_performance")
FRESHNESS_CHECK_PREFIX = "freshness__"  # foundation/engine/quality/checks.py names freshness rules so
GATE_RULE = "ml_gate"
NO_USECASE = "-"
HIDDEN_JOB_PREFIX = "__"  # __ASSET_JOB, __ephemeral_asset_job__: named after no one
SHOWN_METADATA = 6  # metadata entries quoted as the measured value


def asset_path(key: dg.AssetKey) -> str:
    return "/".join(key.path)


def asset_link(base_url: str, key: dg.AssetKey, checks: bool = False) -> str:
    return f"{base_url.rstrip('/')}/assets/{asset_path(key)}" + ("?view=checks" if checks else "")


def usecase_of(keys: Iterable[dg.AssetKey]) -> str:
    """The use case is the first part of our asset keys (`<usecase>/<layer>/<name>`); several: listed."""
    usecases = sorted({key.path[0] for key in keys if len(key.path) > 1})
    return ", ".join(usecases) if usecases else NO_USECASE


def owners_of(workspace: Workspace, usecase: str, declared: Sequence[str] = ()) -> tuple[str, ...]:
    """The asset's owners (source `owner:`, dbt meta owner, KPI owner), then the use case's owner."""
    spec = workspace.scan.usecases.get(usecase)
    return tuple(dict.fromkeys([*declared, *([spec.owner] if spec is not None else [])]))


def measured_value(metadata: dict[str, Any]) -> str:
    """A check's metadata as a short `name=value; ...` line (samples left out: they may hold row data)."""
    parts = []
    for name, entry in metadata.items():
        if name in ("sample",) or name.startswith("dagster/"):
            continue
        value = getattr(entry, "value", entry)
        parts.append(f"{name}={value}")
    return "; ".join(parts[:SHOWN_METADATA])[:300] or "-"


# -- runs ------------------------------------------------------------------------------------------------------------
def run_asset_keys(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[dg.AssetKey]:
    """The assets a run was to materialise: its asset selection, else what its events planned (any job)."""
    if run.asset_selection:
        return sorted(run.asset_selection, key=lambda k: k.path)
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    keys = {r.event_log_entry.dagster_event.asset_key for r in records if r.event_log_entry.dagster_event}
    return sorted((k for k in keys if k is not None), key=lambda k: k.path)


def failed_blocking_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Checks that failed at ERROR severity in the run: such a run's failure is their incident, not another one."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    failed = []
    for record in records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event is not None else None
        is_failure = isinstance(evaluation, dg.AssetCheckEvaluation) and not evaluation.passed
        if is_failure and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failed.append(f"{asset_path(evaluation.asset_key)}:{evaluation.check_name}")
    return failed


def run_target(run: dg.DagsterRun, keys: Sequence[dg.AssetKey]) -> str:
    """What a run was for: its job, or for an asset job (`__ASSET_JOB`, ad hoc) the assets it materialises."""
    if run.job_name.startswith(HIDDEN_JOB_PREFIX) and keys:
        return ", ".join(asset_path(k) for k in keys[:5]) + (f" (+{len(keys) - 5})" if len(keys) > 5 else "")
    return run.job_name


def run_observation(
    workspace: Workspace,
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    failing: bool,
    value: str,
    repository: dg.RepositoryDefinition | None = None,
) -> Observation:
    keys = run_asset_keys(instance, run)
    usecase = usecase_of(keys)
    base = workspace.settings.notifications.dagster_url.rstrip("/")
    return Observation(
        event="run_failed",
        usecase=usecase,
        asset=f"run:{run_target(run, keys)}",
        rule="run",
        failing=failing,
        value=value,
        link=f"{base}/runs/{run.run_id}",
        owners=owners_of(workspace, usecase.split(", ")[0], selected_owners(repository, keys)),
        ref=run.run_id,
    )


def recovered_run_incidents(workspace: Workspace, instance: dg.DagsterInstance) -> list[Observation]:
    """Open run incidents whose failed run's unfinished assets have all been materialised since, by any runs: with
    automation, the next runs select other subsets, so waiting for the same target to succeed could wait forever."""

    observations = []
    for incident in IncidentStore.of_workspace(workspace).open().values():
        failed_run = instance.get_run_by_id(incident.ref) if incident.event == "run_failed" and incident.ref else None
        if failed_run is None:
            continue
        done = instance.get_records_for_run(incident.ref, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        landed = {r.event_log_entry.dagster_event.asset_key for r in done if r.event_log_entry.dagster_event}
        unfinished = [k for k in run_asset_keys(instance, failed_run) if k not in landed]
        if not unfinished:
            continue
        since = incident.opened_at.timestamp()
        records = instance.get_asset_records(unfinished)
        last = {r.asset_entry.asset_key: r.asset_entry.last_materialization for r in records}
        if all(last.get(k) is not None and last[k].timestamp >= since for k in unfinished):
            observations.append(
                Observation(
                    event=incident.event,
                    usecase=incident.usecase,
                    asset=incident.asset,
                    rule=incident.rule,
                    failing=False,
                    value=f"{', '.join(asset_path(k) for k in unfinished[:5])} materialised again",
                    link=incident.link,
                    owners=incident.owners,
                )
            )
    return observations


def selected_owners(repository: dg.RepositoryDefinition | None, keys: Sequence[dg.AssetKey]) -> list[str]:
    if repository is None:
        return []
    graph = repository.asset_graph
    return [o for k in keys if graph.has(k) for o in graph.get(k).owners]


def run_alert_sensors(workspace: Workspace) -> list[dg.SensorDefinition]:
    interval = workspace.settings.notifications.interval_s

    @dg.run_failure_sensor(
        name="alerts_run_failure",
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Opens an incident (and alerts) when a run fails (docs/operations.md#alerts).",
    )
    def alerts_run_failure(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        checks = failed_blocking_checks(context.instance, run.run_id)
        if checks:  # alerts_health reports each failed check as its own incident: one problem, one message
            context.log.info(f"run {run.run_id} failed on blocking check(s) {', '.join(checks)}: alerted as checks")
            return
        message = (context.failure_event.message or "run failed").splitlines()[0][:300]
        observation = run_observation(workspace, context.instance, run, True, message, context.repository_def)
        report = process(workspace, [observation])
        context.log.info(report.summary())

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="alerts_run_success",
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Resolves a failed run's incident when the same target runs successfully.",
    )
    def alerts_run_success(context: dg.RunStatusSensorContext) -> None:
        run = context.dagster_run
        observation = run_observation(workspace, context.instance, run, False, "run succeeded", context.repository_def)
        report = process(workspace, [observation, *recovered_run_incidents(workspace, context.instance)])
        if report.changes:
            context.log.info(report.summary())

    return [alerts_run_failure, alerts_run_success]


# -- checks, freshness, gate, KPIs ----------------------------------------------------------------------------------
def check_observations(
    workspace: Workspace, instance: dg.DagsterInstance, graph: Any, now: datetime
) -> list[Observation]:
    """The latest evaluation of every blocking check and ML monitoring check (no evaluation yet: no observation)."""
    base = workspace.settings.notifications.dagster_url
    watched = {}
    for check_key in graph.asset_check_keys:
        if check_key.name in MONITORING_CHECKS:
            watched[check_key] = "monitoring_check_failed"
        elif check_key.name.startswith(FRESHNESS_CHECK_PREFIX):  # an ingestion rule on the data's own timestamps
            watched[check_key] = "source_stale"
        elif graph.get_check_spec(check_key).blocking:
            watched[check_key] = "blocking_check_failed"
    if not watched:
        return []
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(watched))
    observations = []
    for check_key, event in watched.items():
        # looked up per key: the query matches asset keys and check names separately, so it returns more
        record = latest.get(check_key)
        if record is None:
            continue
        evaluation = record.event.asset_check_evaluation if record.event is not None else None
        if evaluation is None:  # planned, or the check itself crashed: the run's failure says it
            continue
        asset = check_key.asset_key
        usecase = usecase_of([asset])
        # a blocking check stops what is downstream only at ERROR severity (a freshness rule: past error_after);
        # a WARN failure is not an incident. A monitoring check fails at any severity.
        failing = not evaluation.passed and (
            event == "monitoring_check_failed" or evaluation.severity == dg.AssetCheckSeverity.ERROR
        )
        observations.append(
            Observation(
                event=event,
                usecase=usecase,
                asset=asset_path(asset),
                rule=check_key.name,
                failing=failing,
                value=measured_value(dict(evaluation.metadata)),
                link=asset_link(base, asset, checks=True),
                owners=owners_of(workspace, usecase, graph.get(asset).owners if graph.has(asset) else ()),
                observed_at=datetime.fromtimestamp(record.event.timestamp, UTC) if record.event else now,
            )
        )
    return observations


def materialization_observations(
    workspace: Workspace, instance: dg.DagsterInstance, graph: Any, now: datetime
) -> list[Observation]:
    """Sources past their freshness `error_after` (the asset's freshness policy), and the ML gate's last verdict."""
    base = workspace.settings.notifications.dagster_url
    nodes = [n for n in graph.asset_nodes if n.is_materializable]
    records = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records([n.key for n in nodes])}
    observations = []
    for node in nodes:
        entry = records.get(node.key)
        last = entry.last_materialization if entry is not None else None
        if last is None:  # never materialised: nothing to be stale against yet
            continue
        usecase = usecase_of([node.key])
        owners = owners_of(workspace, usecase, node.owners)
        common = {"usecase": usecase, "asset": asset_path(node.key), "owners": owners}
        policy = node.freshness_policy
        fail_window = getattr(policy, "fail_window", None)
        if fail_window is not None:
            limit = fail_window.to_timedelta()
            age = now - datetime.fromtimestamp(last.timestamp, UTC)
            observations.append(
                Observation(
                    event="source_stale",
                    rule="freshness",
                    failing=age > limit,
                    value=f"last load {_duration(age)} ago (error_after {_duration(limit)})",
                    link=asset_link(base, node.key),
                    **common,
                )
            )
        materialization = last.asset_materialization
        gate = materialization.metadata.get("gate") if materialization is not None else None
        if gate is not None:
            reasons = materialization.metadata.get("reasons")
            observations.append(
                Observation(
                    event="blocking_check_failed",
                    rule=GATE_RULE,
                    failing=gate.value == "rejected",
                    value=f"{gate.value}: {reasons.value if reasons is not None else '-'}"[:300],
                    link=asset_link(base, node.key),
                    **common,
                )
            )
    return observations


def _duration(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{max(seconds, 0) // 60}min"


def kpi_observations(workspace: Workspace) -> list[Observation]:
    """Each published KPI with an alert threshold and a value: past the threshold (kpi_catalog's `alert` state)."""

    base = workspace.settings.notifications.dagster_url
    observations = []
    for kpi in KpiCatalog.of(workspace).list():
        if kpi.get("alert") is None or kpi.get("latest") is None:
            continue
        usecase = kpi.get("usecase") or NO_USECASE
        key = dg.AssetKey([usecase, "kpis", f"kpi_{kpi['id']}"])
        worse = "<" if kpi["direction"] == "higher" else ">"
        latest = kpi["latest"]
        observations.append(
            Observation(
                event="kpi_alert",
                usecase=usecase,
                asset=asset_path(key),
                rule="kpi_alert",
                failing=kpi["state"] == "alert",
                value=f"{latest['value']:g} {kpi.get('unit', '')} for {latest['period']} ({kpi['grain']}); alert when "
                f"{worse} {kpi['alert']:g}",
                link=asset_link(base, key),
                owners=owners_of(workspace, usecase, [kpi["owner"]] if kpi.get("owner") else []),
            )
        )
    return observations


def health_observations(
    workspace: Workspace, instance: dg.DagsterInstance, repository: dg.RepositoryDefinition, now: datetime
) -> list[Observation]:
    graph = repository.asset_graph
    observations = check_observations(workspace, instance, graph, now)
    observations += materialization_observations(workspace, instance, graph, now)
    try:
        observations += kpi_observations(workspace)
    except Exception as exc:  # an unreadable catalogue must not hide the other incidents
        log.warning("KPI alert thresholds not evaluated: %s", exc)
    return observations


def health_alert_sensor(workspace: Workspace) -> dg.SensorDefinition:
    @dg.sensor(
        name="alerts_health",
        minimum_interval_seconds=workspace.settings.notifications.interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts on failed blocking and ML monitoring checks, the ML gate, stale sources and KPIs past "
        "their alert threshold; one message per incident and one when it recovers (docs/operations.md#alerts).",
    )
    def alerts_health(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        observations = health_observations(workspace, context.instance, context.repository_def, datetime.now(UTC))
        return dg.SkipReason(process(workspace, observations).summary())

    return alerts_health


def alert_sensors(workspace: Workspace) -> list[dg.SensorDefinition]:
    """The alert sensors, when `notifications.channels` declares at least one channel."""
    if not workspace.settings.notifications.channels:
        return []
    return [*run_alert_sensors(workspace), health_alert_sensor(workspace)]
