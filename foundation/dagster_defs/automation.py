"""Declarative automation: which `AutomationCondition` each asset downstream of bronze gets, and the sensor that
evaluates them, so that `dagster-daemon` alone keeps the platform fresh.

| assets | condition |
|---|---|
| dbt models (staging, marts, features, KPIs), `<uc>/gold/published` | the use case's policy |
| `<uc>/ml/<model>/training_set` | `on_cron(schedules.training)`; `on_missing` when training is manual |
| candidates, evaluation, registered | eager: they follow the training set in the same run |
| predictions, monitoring | the model's policy: after a new feature version (gold) or a new registration |

A policy (foundation/specs/automation.py) comes from foundation.yaml's `automation:`, overridden by the use case's
and then the model spec's. `manual` gives no condition: those assets run only when asked. Bronze keeps its cron
schedule and its new-files sensor (foundation/dagster_defs/file_sensors.py).

DuckDB has one writer: the dbt build and the gold publish hold the warehouse lock (foundation/dbt/warehouse.py) and
share the `duckdb_warehouse` pool, so two runs launched by the sensor wait for each other instead of failing; eager
never requests an asset that is in progress or whose inputs are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from foundation.specs.automation import AutomationSpec, effective_policy
from foundation.workspace import Workspace

AUTOMATION_SENSOR = "foundation_automation"


def eager_condition() -> dg.AutomationCondition:
    """Dagster's eager, and only once the inputs' blocking checks passed (a refused load stops the chain)."""
    return (dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label(
        "eager"
    )


def policy_condition(policy: AutomationSpec) -> dg.AutomationCondition | None:
    if policy.policy == "eager":
        return eager_condition()
    if policy.policy == "on_cron":
        assert policy.cron is not None  # AutomationSpec refuses on_cron without cron
        return dg.AutomationCondition.on_cron(policy.cron)
    return None


def training_condition(policy: AutomationSpec, training_cron: str) -> dg.AutomationCondition | None:
    """Training follows the model spec's cron (once its inputs are fresh); with a manual cron, a model is trained
    once when its features first exist, then on request (or by the retraining sensor)."""
    if policy.policy == "manual":
        return None
    if training_cron != "manual":
        return dg.AutomationCondition.on_cron(training_cron)
    return dg.AutomationCondition.on_missing()


@dataclass(frozen=True)
class AutomationPlan:
    """The declared policies of one workspace: its default and each use case's override."""

    default: AutomationSpec = field(default_factory=AutomationSpec)
    usecases: dict[str, AutomationSpec] = field(default_factory=dict)

    @classmethod
    def of(cls, workspace: Workspace) -> AutomationPlan:
        declared = {uc: spec.automation for uc, spec in workspace.scan.usecases.items() if spec and spec.automation}
        return cls(default=workspace.settings.automation.default(), usecases=declared)

    def for_usecase(self, usecase: str) -> AutomationSpec:
        return effective_policy(self.default, self.usecases.get(usecase))

    def for_model(self, usecase: str, model: AutomationSpec | None) -> AutomationSpec:
        return effective_policy(self.default, self.usecases.get(usecase), model)


def automation_sensor(workspace: Workspace) -> dg.AutomationConditionSensorDefinition:
    """The sensor the daemon runs: it evaluates every asset's condition and launches the runs they ask for."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=workspace.settings.automation.sensor_interval_s,
        description="Refreshes dbt models, gold and ML assets when their inputs change (foundation.yaml automation:).",
    )
