"""Model specs as Dagster assets: training set -> candidates -> evaluation -> registered (the gate), then batch
predictions and monitoring (with asset checks), downstream of the use case's gold snapshots.

Keys: `<uc>/ml/<model>/<step>`, group = use case. Schedules come from the spec's `schedules:`; a sensor retrains a
model when one of its monitoring checks fails (`monitoring.retrain_on_failure`).
"""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations at runtime.

import warnings
from typing import Any

import dagster as dg

from foundation.core.workspace import Workspace, load_model_specs
from foundation.dagster_defs.automation import AutomationPlan, eager_condition, policy_condition, training_condition
from foundation.dagster_defs.resources import FoundationResource
from foundation.specs.automation import AutomationSpec
from foundation.specs.model import ModelRef

TRAINING_STEPS = ("training_set", "candidates", "evaluation", "registered")


def ml_key(ref: ModelRef, step: str) -> dg.AssetKey:
    return dg.AssetKey([ref.usecase, "ml", ref.spec.name, step])


def _ref(foundation: FoundationResource, key: str) -> tuple[Workspace, ModelRef]:
    workspace = foundation.workspace()
    scan = load_model_specs(workspace.root)
    return workspace, next(r for r in scan.models if r.key == key)


def model_assets(ref: ModelRef, automation: AutomationPlan | None = None) -> list[Any]:
    key = ref.key
    # What every asset of one model shares: its use case's group, the model's owner, the ml layer.
    common: dict[str, Any] = {"group_name": ref.usecase, "owners": [ref.spec.owner], "tags": {"layer": "ml"}}
    policy = automation.for_model(ref.usecase, ref.spec.automation) if automation else AutomationSpec(policy="manual")
    train_when = training_condition(policy, ref.spec.schedules.training)
    # The steps after the training set run in the same run as it (eager: their input was just requested).
    after_training = eager_condition() if train_when is not None else None
    scoring = policy_condition(policy)

    def ins(*steps: str) -> dict[str, dg.AssetIn]:
        return {step: dg.AssetIn(ml_key(ref, step)) for step in steps}

    @dg.asset(
        key=ml_key(ref, "training_set"),
        **common,
        kinds={"pandas"},
        deps=[dg.AssetKey([ref.usecase, "gold", "published"])],
        description=f"Rows of {ref.spec.feature_table} fit for training ({ref.spec.row_filter or 'all rows'}).",
        output_required=False,
        automation_condition=train_when,
    )
    def training_set(context: dg.AssetExecutionContext, foundation: FoundationResource) -> Any:
        from mlops.pipeline import load_training_set
        from mlops.training import training_problem

        workspace, current = _ref(foundation, key)
        data = load_training_set(workspace, current)
        problem = training_problem(data.frame, current.spec)
        if problem is not None:
            # Too little data (a small demo, a new use case) is not a pipeline failure: skip training, say why.
            context.log.warning(f"{current.key}: training skipped: {problem}")
            return
        metadata = {"dagster/row_count": len(data.frame), "feature_table_version": data.delta_version}
        yield dg.Output(data, metadata=metadata)

    @dg.asset(
        key=ml_key(ref, "candidates"),
        **common,
        kinds={"scikitlearn"},
        ins=ins("training_set"),
        automation_condition=after_training,
        description="The baseline rule and every candidate, split by time, fitted and evaluated on validation.",
    )
    def candidates(context: dg.AssetExecutionContext, foundation: FoundationResource, training_set: Any) -> Any:
        from mlops.pipeline import fit_candidates

        _, current = _ref(foundation, key)
        result = fit_candidates(training_set, current)
        context.add_output_metadata({**result.split.describe(), "winner": result.winner.name})
        return result

    @dg.asset(
        key=ml_key(ref, "evaluation"),
        **common,
        kinds={"mlflow"},
        ins=ins("training_set", "candidates"),
        automation_condition=after_training,
        description="MLflow runs: params, metrics, models with signature, the comparison table (markdown + PNG).",
    )
    def evaluation(
        context: dg.AssetExecutionContext, foundation: FoundationResource, training_set: Any, candidates: Any
    ) -> Any:
        from mlops.pipeline import log_evaluation
        from mlops.report import comparison_markdown

        workspace, current = _ref(foundation, key)
        logged = log_evaluation(workspace, current, candidates, training_set.delta_version)
        context.add_output_metadata(
            {
                "mlflow_run_id": logged["run_id"],
                "comparison": dg.MetadataValue.md(
                    comparison_markdown(logged["comparison"], current.spec.selection, logged["title"])
                ),
            }
        )
        return logged

    @dg.asset(
        key=ml_key(ref, "registered"),
        **common,
        kinds={"mlflow"},
        ins=ins("training_set", "candidates", "evaluation"),
        automation_condition=after_training,
        description="The winner registered in MLflow; `champion` alias only if it passes the gate (history kept).",
    )
    def registered(
        context: dg.AssetExecutionContext,
        foundation: FoundationResource,
        training_set: Any,
        candidates: Any,
        evaluation: Any,
    ) -> dg.MaterializeResult:
        from mlops.pipeline import register_and_gate

        workspace, current = _ref(foundation, key)
        report = register_and_gate(workspace, current, candidates, training_set, evaluation)
        gate = report["gate"]
        context.log.info(f"{current.registered_name} v{report['registered_version']}: {'; '.join(gate['reasons'])}")
        return dg.MaterializeResult(
            metadata={
                "version": report["registered_version"],
                "winner": report["winner"],
                "gate": "passed" if gate["passed"] else "rejected",
                "reasons": "; ".join(gate["reasons"]),
                "champion": report["champion"] or 0,
            }
        )

    @dg.asset(
        key=ml_key(ref, "predictions"),
        **common,
        kinds={"delta"},
        deps=[ml_key(ref, "registered"), dg.AssetKey([ref.usecase, "gold", "published"])],
        description="Batch predictions of the champion for every feature row not scored yet (lakehouse, Delta).",
        output_required=False,
        automation_condition=scoring,
    )
    def predictions(context: dg.AssetExecutionContext, foundation: FoundationResource) -> Any:
        from mlops.inference import batch_score, predictions_uri
        from mlops.registry import current_champion, mlflow_client

        workspace, current = _ref(foundation, key)
        if current_champion(mlflow_client(workspace), current.registered_name) is None:
            context.log.warning(f"{current.registered_name} has no champion yet: nothing to score")
            return
        report = batch_score(workspace, current)
        context.log.info(f"scored {report.rows_scored} row(s) with v{report.version}, {report.rows_flagged} flagged")
        from mlops.kpis import publish_model_kpis

        kpis = publish_model_kpis(workspace, current)  # e.g. trucks at risk: gold/<uc>/kpi_<id>
        yield dg.MaterializeResult(
            metadata={
                **{k: v for k, v in report.to_dict().items() if v is not None},
                **({"model_kpis": ", ".join(sorted(kpis))} if kpis else {}),
                "dagster/uri": predictions_uri(workspace, current),
            }
        )

    @dg.asset(
        key=ml_key(ref, "monitoring"),
        **common,
        kinds={"delta"},
        deps=[ml_key(ref, "predictions")],
        automation_condition=scoring,
        description="Feature drift (PSI, training vs recent) and realised precision/recall per week.",
        check_specs=[
            dg.AssetCheckSpec("feature_drift", asset=ml_key(ref, "monitoring")),
            dg.AssetCheckSpec("realised_performance", asset=ml_key(ref, "monitoring")),
        ],
        output_required=False,
    )
    def monitoring(context: dg.AssetExecutionContext, foundation: FoundationResource) -> Any:
        from mlops.monitoring import run_monitoring
        from mlops.registry import current_champion, mlflow_client

        workspace, current = _ref(foundation, key)
        if current_champion(mlflow_client(workspace), current.registered_name) is None:
            context.log.warning(f"{current.registered_name} has no champion yet: nothing to monitor")
            return
        result = run_monitoring(workspace, current)
        drifting = [d for d in result["drift"] if d["status"] == "drift"]
        verdict = result["performance"]
        yield dg.MaterializeResult(
            metadata={"champion": result["champion"], "weeks": len(result["weekly"])},
            check_results=[
                dg.AssetCheckResult(
                    check_name="feature_drift",
                    passed=result["drift_passed"],
                    metadata={
                        "drifting": ", ".join(f"{d['feature']} (PSI {d['psi']:.2f})" for d in drifting) or "none",
                        "max_psi": max((d["psi"] for d in result["drift"]), default=0.0),
                    },
                ),
                dg.AssetCheckResult(
                    check_name="realised_performance",
                    passed=verdict["passed"],
                    metadata={
                        "precision": verdict["precision"] if verdict["precision"] is not None else -1.0,
                        "recall": verdict["recall"] if verdict["recall"] is not None else -1.0,
                        "problems": "; ".join(verdict["problems"]) or "none",
                    },
                ),
            ],
        )

    return [training_set, candidates, evaluation, registered, predictions, monitoring]


def training_selection(ref: ModelRef) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*(ml_key(ref, step) for step in TRAINING_STEPS))


def model_schedules(ref: ModelRef, automation: AutomationPlan | None = None) -> list[dg.ScheduleDefinition]:
    """The spec's crons as schedules, except training's when an automation condition already follows it."""
    schedules = []
    name = ref.registered_name
    policy = automation.for_model(ref.usecase, ref.spec.automation) if automation else AutomationSpec(policy="manual")
    if ref.spec.schedules.training != "manual" and policy.policy == "manual":
        schedules.append(
            dg.ScheduleDefinition(
                name=f"{name}__training",
                cron_schedule=ref.spec.schedules.training,
                target=training_selection(ref),
                description=f"Retraining plan of {ref.key} (from {ref.path.name})",
                default_status=dg.DefaultScheduleStatus.RUNNING,
            )
        )
    if ref.spec.schedules.inference != "manual":
        schedules.append(
            dg.ScheduleDefinition(
                name=f"{name}__inference",
                cron_schedule=ref.spec.schedules.inference,
                target=dg.AssetSelection.assets(ml_key(ref, "predictions"), ml_key(ref, "monitoring")),
                description=f"Batch scoring plan of {ref.key} (from {ref.path.name})",
                default_status=dg.DefaultScheduleStatus.RUNNING,
            )
        )
    return schedules


def retrain_sensor(refs: list[ModelRef]) -> dg.SensorDefinition:
    """Retrain a model when one of its monitoring checks failed since the last look (once per failed evaluation)."""
    watched = {r.key: r for r in refs if r.spec.monitoring.retrain_on_failure}

    @dg.sensor(
        name="ml_retrain_on_failed_monitoring",
        minimum_interval_seconds=300,
        target=dg.AssetSelection.assets(*(ml_key(r, s) for r in watched.values() for s in TRAINING_STEPS)),
        description="Retrains a model when its feature_drift or realised_performance check fails.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext) -> Any:
        seen: dict[str, int] = dict(_cursor(context.cursor))
        requests = []
        for key, ref in watched.items():
            for check in ("feature_drift", "realised_performance"):
                check_key = dg.AssetCheckKey(ml_key(ref, "monitoring"), check)
                record = context.instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key]).get(
                    check_key
                )
                if record is None or record.id <= seen.get(f"{key}:{check}", 0):
                    continue
                seen[f"{key}:{check}"] = record.id
                evaluation = record.event.asset_check_evaluation if record.event else None
                if evaluation is not None and not evaluation.passed:
                    requests.append(
                        dg.RunRequest(
                            run_key=f"{key}:{check}:{record.id}",
                            asset_selection=[ml_key(ref, s) for s in TRAINING_STEPS],
                            tags={"foundation/reason": f"{check} failed"},
                        )
                    )
        context.update_cursor(",".join(f"{k}={v}" for k, v in seen.items()))
        return requests

    return _sensor


def _cursor(cursor: str | None) -> list[tuple[str, int]]:
    return [(part.split("=")[0], int(part.split("=")[1])) for part in (cursor or "").split(",") if "=" in part]


def ml_definitions(workspace: Workspace) -> tuple[list[Any], list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    """Assets, schedules and the retraining sensor of every valid model spec (invalid ones: a warning here, an error
    from `foundation check`)."""
    scan = load_model_specs(workspace.root)
    if not scan.ok:
        warnings.warn(
            "model specs not loaded: " + "; ".join(e.format() for e in scan.errors if e.severity == "error"),
            stacklevel=2,
        )
        return [], [], []
    if not scan.models:
        return [], [], []
    automation = AutomationPlan.of(workspace)
    assets = [a for ref in scan.models for a in model_assets(ref, automation)]
    schedules = [s for ref in scan.models for s in model_schedules(ref, automation)]
    sensors = [retrain_sensor(scan.models)] if any(r.spec.monitoring.retrain_on_failure for r in scan.models) else []
    return assets, schedules, sensors
