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

DuckDB has one writer: the dbt build and the gold publish hold the warehouse lock (foundation/engine/dbt/warehouse.py)
and
share the `duckdb_warehouse` pool, so two runs launched by the sensor wait for each other instead of failing; eager
never requests an asset that is in progress or whose inputs are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import dagster as dg

from foundation.core.workspace import Workspace
from foundation.dagster_defs.instance import usecase_tags
from foundation.dagster_defs.keys import bronze_asset_key
from foundation.specs.automation import AutomationSpec, effective_policy


def eager_condition(partitioned: frozenset[dg.AssetKey] = frozenset()) -> dg.AutomationCondition:
    """Dagster's eager, and only once the inputs' blocking checks passed (a refused load stops the chain).

    `partitioned`: time-partitioned inputs of an unpartitioned asset. Dagster's eager waits until no input is
    missing, and for such an input that means every partition since its start: a source loaded from today on (or
    backfilled in part) would never refresh what reads it. Their missing partitions and the checks of partitions
    not loaded are not waited for; a new partition still triggers the refresh."""
    condition = dg.AutomationCondition.eager()
    checks = dg.AutomationCondition.all_deps_blocking_checks_passed()
    if partitioned:
        ignored = dg.AssetSelection.assets(*partitioned)
        condition = condition.replace("any_deps_missing", dg.AutomationCondition.any_deps_missing().ignore(ignored))
        checks = checks.ignore(ignored)
    return (condition & checks).with_label("eager")


def policy_condition(
    policy: AutomationSpec, partitioned: frozenset[dg.AssetKey] = frozenset()
) -> dg.AutomationCondition | None:
    if policy.policy == "eager":
        return eager_condition(partitioned)
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
    partitioned: frozenset[dg.AssetKey] = frozenset()  # time-partitioned assets (their readers: see eager_condition)

    @classmethod
    def of(cls, workspace: Workspace) -> AutomationPlan:
        declared = {uc: spec.automation for uc, spec in workspace.scan.usecases.items() if spec and spec.automation}
        partitioned = frozenset(bronze_asset_key(s) for s in workspace.sources() if s.spec.partitions is not None)
        return cls(default=workspace.settings.automation.default(), usecases=declared, partitioned=partitioned)

    def with_partitioned(self, keys: Iterable[dg.AssetKey]) -> AutomationPlan:
        return replace(self, partitioned=self.partitioned | frozenset(keys))

    def condition(self, key: dg.AssetKey, usecase: str) -> dg.AutomationCondition | None:
        """The condition of a dbt or gold asset of `usecase`; a partitioned asset itself waits for its inputs'
        partitions as Dagster's eager does."""
        policy = self.for_usecase(usecase)
        return policy_condition(policy, frozenset() if key in self.partitioned else self.partitioned)

    def for_usecase(self, usecase: str) -> AutomationSpec:
        return effective_policy(self.default, self.usecases.get(usecase))

    def for_model(self, usecase: str, model: AutomationSpec | None) -> AutomationSpec:
        return effective_policy(self.default, self.usecases.get(usecase), model)


def automation_sensor_name(usecase: str) -> str:
    return f"{usecase}__automation"


def automation_sensors(workspace: Workspace, usecases: Iterable[str]) -> list[dg.AutomationConditionSensorDefinition]:
    """The sensors the daemon runs, one per use case: each evaluates its use case's conditions and launches the
    runs they ask for. One per use case, not one for the platform, so that a tick's cost follows the size of a use
    case, not of the platform: at 500 sources, a tick over every asset took 24 s, one use case's 0.25-4.7 s
    (docs/benchmarks.md, loaded machine)."""
    return [
        dg.AutomationConditionSensorDefinition(
            automation_sensor_name(usecase),
            target=dg.AssetSelection.groups(usecase),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=workspace.settings.automation.sensor_interval_s,
            run_tags=usecase_tags(usecase),  # the run queue's per-use-case limit applies to its runs
            description=f"Refreshes {usecase}'s dbt models, gold and ML assets when their inputs change "
            "(automation: in foundation.yaml, usecase.yaml, the model specs).",
        )
        for usecase in sorted(set(usecases))
    ]
