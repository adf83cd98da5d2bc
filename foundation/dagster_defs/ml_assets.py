"""Model specs as Dagster assets: training set -> candidates -> evaluation -> registered (the gate), then batch
predictions and monitoring (with asset checks), downstream of the use case's gold snapshots.

Keys: `<uc>/ml/<model>/<step>`, group = use case. Schedules come from the spec's `schedules:`; a sensor retrains a
model when one of its monitoring checks fails (`monitoring.retrain_on_failure`).
"""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations at runtime.

import warnings
from dataclasses import dataclass
from typing import Any

import dagster as dg

from foundation.core.workspace import Workspace, load_model_specs
from foundation.dagster_defs.automation import AutomationPlan, eager_condition, policy_condition, training_condition
from foundation.dagster_defs.instance import usecase_tags
from foundation.dagster_defs.resources import FoundationResource
from foundation.specs.automation import AutomationSpec
from foundation.specs.model import ModelRef
from mlops.registry import current_champion, mlflow_client
from mlops.report import comparison_markdown

TRAINING_STEPS = ("training_set", "candidates", "evaluation", "registered")


def ml_key(ref: ModelRef, step: str) -> dg.AssetKey:
    return dg.AssetKey([ref.usecase, "ml", ref.spec.name, step])


def _ref(foundation: FoundationResource, key: str) -> tuple[Workspace, ModelRef]:
    workspace = foundation.workspace()
    scan = load_model_specs(workspace.root)
    return workspace, next(r for r in scan.models if r.key == key)


@dataclass(frozen=True)
class _ModelAssets:
    """What the six assets of one model share: its ref, the asset arguments common to all, when each step runs."""

    ref: ModelRef
    common: dict[str, Any]  # the use case's group, the model's owner, the ml layer
    train_when: dg.AutomationCondition | None
    after_training: dg.AutomationCondition | None  # the steps after the training set, in the same run
    scoring: dg.AutomationCondition | None

    def key(self, step: str) -> dg.AssetKey:
        return ml_key(self.ref, step)

    def ins(self, *steps: str) -> dict[str, dg.AssetIn]:
        return {step: dg.AssetIn(ml_key(self.ref, step)) for step in steps}


def model_assets(ref: ModelRef, automation: AutomationPlan | None = None) -> list[Any]:
    """Training set -> candidates -> evaluation -> registered, then predictions and monitoring."""
    policy = automation.for_model(ref.usecase, ref.spec.automation) if automation else AutomationSpec(policy="manual")
    train_when = training_condition(policy, ref.spec.schedules.training)
    model = _ModelAssets(
        ref,
        {"group_name": ref.usecase, "owners": [ref.spec.owner], "tags": {"layer": "ml"}},
        train_when,
        # The steps after the training set run in the same run as it (eager: their input was just requested).
        eager_condition() if train_when is not None else None,
        policy_condition(policy),
    )
    return [
        training_set_asset(model),
        candidates_asset(model),
        evaluation_asset(model),
        registered_asset(model),
        predictions_asset(model),
        monitoring_asset(model),
    ]


def training_set_asset(model: _ModelAssets) -> dg.AssetsDefinition:
    key, spec = model.ref.key, model.ref.spec

    @dg.asset(
        key=model.key("training_set"),
        **model.common,
        kinds={"pandas"},
        deps=[dg.AssetKey([model.ref.usecase, "gold", "published"])],
        description=f"Rows of {spec.feature_table} fit for training ({spec.row_filter or 'all rows'}).",
        output_required=False,
        automation_condition=model.train_when,
    )
    def training_set(context: dg.AssetExecutionContext, foundation: FoundationResource) -> Any:
        from mlops.pipeline import load_training_set  # lazy: mlops.pipeline loads scikit-learn (+1 s)
        from mlops.training import training_problem  # lazy: scikit-learn

        workspace, current = _ref(foundation, key)
        data = load_training_set(workspace, current)
        problem = training_problem(data.frame, current.spec)
        if problem is not None:
            # Too little data (a small demo, a new use case) is not a pipeline failure: skip training, say why.
            context.log.warning(f"{current.key}: training skipped: {problem}")
            return
        metadata = {"dagster/row_count": len(data.frame), "feature_table_version": data.delta_version}
        yield dg.Output(data, metadata=metadata)

    return training_set


def candidates_asset(model: _ModelAssets) -> dg.AssetsDefinition:
    key = model.ref.key

    @dg.asset(
        key=model.key("candidates"),
        **model.common,
        kinds={"scikitlearn"},
        ins=model.ins("training_set"),
        automation_condition=model.after_training,
        description="The baseline rule and every candidate, split by time, fitted and evaluated on validation.",
    )
    def candidates(context: dg.AssetExecutionContext, foundation: FoundationResource, training_set: Any) -> Any:
        from mlops.pipeline import fit_candidates  # lazy: scikit-learn

        _, current = _ref(foundation, key)
        result = fit_candidates(training_set, current)
        context.add_output_metadata({**result.split.describe(), "winner": result.winner.name})
        return result

    return candidates


def evaluation_asset(model: _ModelAssets) -> dg.AssetsDefinition:
    key = model.ref.key

    @dg.asset(
        key=model.key("evaluation"),
        **model.common,
        kinds={"mlflow"},
        ins=model.ins("training_set", "candidates"),
        automation_condition=model.after_training,
        description="MLflow runs: params, metrics, models with signature, the comparison table (markdown + PNG).",
    )
    def evaluation(
        context: dg.AssetExecutionContext, foundation: FoundationResource, training_set: Any, candidates: Any
    ) -> Any:
        from mlops.pipeline import log_evaluation  # lazy: scikit-learn

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

    return evaluation


def registered_asset(model: _ModelAssets) -> dg.AssetsDefinition:
    """Its value is the training report (comparison, winner, gate verdict): `training_reports` reads it back."""
    key = model.ref.key

    @dg.asset(
        key=model.key("registered"),
        **model.common,
        kinds={"mlflow"},
        ins=model.ins("training_set", "candidates", "evaluation"),
        automation_condition=model.after_training,
        description="The winner registered in MLflow; `champion` alias only if it passes the gate (history kept).",
    )
    def registered(
        context: dg.AssetExecutionContext,
        foundation: FoundationResource,
        training_set: Any,
        candidates: Any,
        evaluation: Any,
    ) -> dg.MaterializeResult:
        from mlops.pipeline import register_and_gate  # lazy: scikit-learn

        workspace, current = _ref(foundation, key)
        report = register_and_gate(workspace, current, candidates, training_set, evaluation)
        gate = report["gate"]
        version = report["registered_version"]  # None: rejected, not registered
        context.log.info(f"{current.registered_name} v{version or '-'}: {'; '.join(gate['reasons'])}")
        return dg.MaterializeResult(
            value=report,
            metadata={
                "version": report["registered_version"] or 0,
                "winner": report["winner"],
                "gate": "passed" if gate["passed"] else "rejected",
                "reasons": "; ".join(gate["reasons"]),
                "champion": report["champion"] or 0,
            },
        )

    return registered


def predictions_asset(model: _ModelAssets) -> dg.AssetsDefinition:
    key = model.ref.key

    @dg.asset(
        key=model.key("predictions"),
        **model.common,
        kinds={"delta"},
        deps=[model.key("registered"), dg.AssetKey([model.ref.usecase, "gold", "published"])],
        description="Batch predictions of the champion for every feature row not scored yet (lakehouse, Delta).",
        output_required=False,
        automation_condition=model.scoring,
    )
    def predictions(context: dg.AssetExecutionContext, foundation: FoundationResource) -> Any:
        from mlops.inference import predictions_uri  # lazy: pandas, +0.35 s on every definitions load
        from mlops.kpis import publish_model_kpis  # lazy: pandas
        from mlops.spark_scoring import score_on_profile  # lazy: as above; on Spark for the Spark profile

        workspace, current = _ref(foundation, key)
        if current_champion(mlflow_client(workspace), current.registered_name) is None:
            context.log.warning(f"{current.registered_name} has no champion yet: nothing to score")
            return
        report = score_on_profile(workspace, current)
        context.log.info(f"scored {report.rows_scored} row(s) with v{report.version}, {report.rows_flagged} flagged")
        kpis = publish_model_kpis(workspace, current)  # e.g. trucks at risk: gold/<uc>/kpi_<id>
        yield dg.MaterializeResult(
            metadata={
                **{k: v for k, v in report.to_dict().items() if v is not None},
                **({"model_kpis": ", ".join(sorted(kpis))} if kpis else {}),
                "dagster/uri": predictions_uri(workspace, current),
            }
        )

    return predictions


def monitoring_asset(model: _ModelAssets) -> dg.AssetsDefinition:
    key = model.ref.key

    @dg.asset(
        key=model.key("monitoring"),
        **model.common,
        kinds={"delta"},
        deps=[model.key("predictions")],
        automation_condition=model.scoring,
        description="Feature drift (PSI, training vs recent) and realised precision/recall per week "
        "(a regression: realised MAE, RMSE and bias).",
        check_specs=[
            dg.AssetCheckSpec("feature_drift", asset=model.key("monitoring")),
            dg.AssetCheckSpec("realised_performance", asset=model.key("monitoring")),
        ],
        output_required=False,
    )
    def monitoring(context: dg.AssetExecutionContext, foundation: FoundationResource) -> Any:
        from mlops.monitoring import run_monitoring  # lazy: pandas, +0.35 s on every definitions load

        workspace, current = _ref(foundation, key)
        if current_champion(mlflow_client(workspace), current.registered_name) is None:
            context.log.warning(f"{current.registered_name} has no champion yet: nothing to monitor")
            return
        result = run_monitoring(workspace, current)
        yield dg.MaterializeResult(
            metadata={"champion": result["champion"], "weeks": len(result["weekly"])},
            check_results=monitoring_check_results(result),
        )

    return monitoring


def monitoring_check_results(result: dict[str, Any]) -> list[dg.AssetCheckResult]:
    """The two checks of a monitoring run: feature drift and realised performance."""
    drifting = [d for d in result["drift"] if d["status"] == "drift"]
    verdict = result["performance"]
    return [
        dg.AssetCheckResult(
            check_name="feature_drift",
            passed=result["drift_passed"],
            metadata={
                # each feature against its own cut-off (the spec's, raised to its in-training wander)
                "drifting": ", ".join(f"{d['feature']} (PSI {d['psi']:.2f} > {d['error_at']:.2f})" for d in drifting)
                or "none",
                "max_psi": max((d["psi"] for d in result["drift"]), default=0.0),
            },
        ),
        dg.AssetCheckResult(
            check_name="realised_performance",
            passed=verdict["passed"],
            metadata=_realised_metadata(verdict, result.get("validation", {}), result.get("task") == "regression"),
        ),
    ]


def _realised_metadata(verdict: dict[str, Any], validation: dict[str, Any], regression: bool) -> dict[str, Any]:
    """The realised figures, the problems, the validation figures (`foundation quality` shows the first four): a
    classifier's precision and recall (-1: undefined), a regression's MAE, RMSE and bias (left out when undefined:
    a bias of -1 is a value)."""
    problems = "; ".join(verdict["problems"]) or "none"
    if not regression:
        return {
            "precision": _or_none(verdict["precision"]),
            "recall": _or_none(verdict["recall"]),
            "problems": problems,
            "validation_precision": _or_none(validation.get("precision")),
            "validation_recall": _or_none(validation.get("recall")),
        }
    figures = {"mae": verdict.get("mae"), "rmse": verdict.get("rmse"), "problems": problems}
    figures |= {"validation_mae": validation.get("mae"), "validation_rmse": validation.get("rmse")}
    figures |= {"bias": verdict.get("bias"), "validation_bias": validation.get("bias")}
    return {name: value if name == "problems" else float(value) for name, value in figures.items() if value is not None}


def _or_none(value: float | None) -> float:
    return -1.0 if value is None else float(value)  # Dagster metadata has no null float; -1 as for precision above


def training_reports(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """The training report of every model an in-process run registered: `<uc>/<model>` -> report (the value of its
    `registered` asset). A model whose training was skipped (too little data) or failed has none."""
    reports = {}
    for event in result.get_asset_materialization_events():
        path = event.asset_key.path if event.asset_key else []
        if len(path) == 4 and path[1] == "ml" and path[3] == "registered":
            reports[f"{path[0]}/{path[2]}"] = result.asset_value(event.asset_key)
    return reports


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
                tags=usecase_tags(ref.usecase),
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
                tags=usecase_tags(ref.usecase),
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
                            tags={"foundation/reason": f"{check} failed", **usecase_tags(ref.usecase)},
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
