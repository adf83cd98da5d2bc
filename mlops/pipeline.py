"""Training end to end for one model spec: training set -> candidates -> evaluation -> registration (the gate).

Each step is a function the Dagster assets call (and `bench/`, the tests); I/O is MLflow, the lakehouse and one
report file per model under the state folder (`<state>/ml/<uc>__<model>/training_report.json`), which
`foundation train` prints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from skops.io import dumps, get_untrusted_types

from foundation.core.workspace import Workspace
from foundation.specs.model import ModelRef
from mlops.dataset import read_feature_table
from mlops.explain import log_importances
from mlops.metrics import evaluate_any
from mlops.registry import (
    CHALLENGER,
    CHAMPION,
    GateDecision,
    HistoryEvent,
    actor,
    append_history,
    becomes_challenger,
    current_champion,
    decide,
    experiment_id,
    mlflow_client,
    write_json,
)
from mlops.report import as_dicts, comparison_markdown, comparison_png, confusion_png
from mlops.training import (
    CandidateResult,
    TrainingResult,
    model_inputs,
    model_outputs,
    reproducible_scores,
    train_and_evaluate,
)

logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)  # "pip version" noise on every log_model


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    delta_version: int


def report_path(workspace: Workspace, ref: ModelRef) -> Path:
    return workspace.ml_state_dir / ref.registered_name / "training_report.json"


def load_training_set(workspace: Workspace, ref: ModelRef) -> TrainingSet:
    frame, version = read_feature_table(workspace, ref.usecase, ref.spec, training=True)
    return TrainingSet(frame, version)


def fit_candidates(training_set: TrainingSet, ref: ModelRef) -> TrainingResult:
    return train_and_evaluate(training_set.frame, ref.spec)


def _trusted_types(pipeline: Any) -> list[str]:
    """We fitted this pipeline in this process: trust exactly the types skops reports for it."""
    return sorted(get_untrusted_types(data=dumps(pipeline)))


def log_evaluation(workspace: Workspace, ref: ModelRef, result: TrainingResult, data_version: int) -> dict[str, Any]:
    """One MLflow parent run per training (the comparison as markdown + PNG, confusion matrices), one child run per
    candidate (params, metrics, the model with signature and input example) and one for the 'as is' rule."""
    started = time.perf_counter()
    client = mlflow_client(workspace)
    spec = ref.spec
    comparison = as_dicts(result.comparison())
    title = f"{ref.key}: {result.split.title()}"
    winner = result.winner
    models: dict[str, str] = {}
    with mlflow.start_run(
        experiment_id=experiment_id(workspace, client, ref.registered_name), run_name=f"train {ref.spec.name}"
    ) as parent:
        mlflow.set_tags(
            {"foundation.usecase": ref.usecase, "foundation.model": spec.name, "foundation.spec": str(ref.path)}
        )
        mlflow.log_params(
            {
                "feature_table": spec.feature_table,
                "feature_table_version": data_version,
                "features": len(result.features),
                "selection_metric": spec.selection.metric,
                "seed": spec.seed,
                **{f"split_{k}": v for k, v in result.split.describe().items()},
            }
        )
        # Children in the parent's experiment: without it MLflow files them (and their models) under "Default"
        # and its artifacts under ./mlruns, outside `mlflow.artifact_root`.
        experiment = parent.info.experiment_id
        with mlflow.start_run(run_name=spec.baseline.name, nested=True, experiment_id=experiment):
            mlflow.log_param(
                "expression" if spec.is_regression else "rule", spec.baseline.expression or spec.baseline.rule
            )
            mlflow.log_metrics(mlflow_metrics(comparison[spec.baseline.name]))
        for candidate in result.candidates:
            with mlflow.start_run(run_name=candidate.name, nested=True, experiment_id=experiment):
                models[candidate.name] = log_candidate(candidate, comparison[candidate.name], result)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "comparison.md").write_text(comparison_markdown(comparison, spec.selection, title))
            comparison_png(comparison, spec.selection, folder / "comparison.png", title)
            if not spec.is_regression:
                confusion_png(comparison, folder / "confusion_matrices.png", title)
            mlflow.log_artifacts(tmp)
        mlflow.log_metric(f"winner_{spec.selection.metric}", winner.evaluation.score)
        mlflow.set_tag("foundation.winner", winner.name)
    return {
        "run_id": parent.info.run_id,
        "model_uris": models,
        "comparison": comparison,
        "title": title,
        "seconds": time.perf_counter() - started,
    }


def log_candidate(candidate: CandidateResult, metrics: dict[str, Any], result: TrainingResult) -> str:
    """In the active (child) run: the candidate's params and metrics, and its model with signature and input
    example (a classifier's pyfunc answers `predict_proba`, a regressor's `predict`: the value; its threshold and
    features in the metadata). Returns the model's URI."""
    threshold = {"threshold": candidate.threshold} if candidate.threshold is not None else {}
    mlflow.log_params({"estimator": candidate.estimator, **threshold, **candidate.params})
    mlflow.log_metrics(mlflow_metrics(metrics))
    mlflow.log_metric("fit_seconds", candidate.fit_seconds)
    title = f"{candidate.name}: permutation importance on validation rows"
    log_importances(candidate.importance, title, result.spec.is_regression)
    example = result.input_example
    info = mlflow.sklearn.log_model(
        candidate.pipeline,
        name="model",
        signature=infer_signature(example, model_outputs(candidate.pipeline, example)),
        input_example=example,
        pyfunc_predict_fn="predict" if result.spec.is_regression else "predict_proba",
        pip_requirements=_requirements(),  # skips MLflow's slow environment inference
        skops_trusted_types=_trusted_types(candidate.pipeline),
        metadata={"threshold": candidate.threshold, "features": result.features, "target": result.spec.target},
    )
    return info.model_uri


def mlflow_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """A comparison column as MLflow metrics: the numbers, and each metric's fold mean and spread flattened
    (`fold_mean_f1`, `fold_std_f1`)."""
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for metric, (mean, std) in (metrics.get("fold_spread") or {}).items():
        flat |= {f"fold_mean_{metric}": mean, f"fold_std_{metric}": std}
    return flat


def _requirements() -> list[str]:
    return [f"scikit-learn=={version('scikit-learn')}", f"pandas=={version('pandas')}", f"numpy=={version('numpy')}"]


def champion_score(
    client: Any, name: str, result: TrainingResult, frame: pd.DataFrame
) -> tuple[float | None, int | None, str]:
    """The current champion re-scored on this training's validation rows, so both are judged on the same data.

    Falls back to the score it was registered with when it cannot read these rows (its features changed), or when
    the comparison is K-fold (every row validated, some of them the champion's training rows)."""
    champion = current_champion(client, name)
    if champion is None:
        return None, None, ""
    tags = champion.tags or {}
    features = json.loads(tags.get("foundation.features", "[]"))
    validation = frame.reset_index(drop=True)[result.split.validation]
    # K folds validate every row, rows the champion may have been trained on: its registered score is fairer
    if features and set(features) <= set(validation.columns) and not result.split.folds:
        model = mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION}")
        scores = reproducible_scores(model, model_inputs(validation, features))
        predicted = scores if result.spec.is_regression else scores >= float(tags.get("foundation.threshold", 0.5))
        evaluation = evaluate_any(result.validation_actual, predicted, result.spec.selection)
        return evaluation.score, int(champion.version), "re-scored on this validation set"
    return float(tags.get("foundation.score", "nan")), int(champion.version), "score at its registration"


def register_and_gate(
    workspace: Workspace,
    ref: ModelRef,
    result: TrainingResult,
    training_set: TrainingSet,
    logged: dict[str, Any],
) -> dict[str, Any]:
    """Judge the winner at the gate. Only a winner that passes becomes a registry version (and the champion); a
    rejected one stays a logged model in its MLflow run. Both verdicts go to the history; returns the report."""
    client = mlflow_client(workspace)
    name = ref.registered_name
    winner = result.winner
    champ_score, champ_version, champ_basis = champion_score(client, name, result, training_set.frame)
    decision: GateDecision = decide(
        ref.spec.selection.metric,
        winner.evaluation.score,
        result.baseline.score,
        champ_score,
        champ_version,
        ref.spec.gate,
        lower_is_better=ref.spec.selection.lower_is_better,
    )
    model_uri = logged["model_uris"][winner.name]
    number = None
    to_challenger = becomes_challenger(decision, ref.spec.gate)  # gate.challenger: true (mlops.registry)
    if decision.passed or to_challenger:
        number = register_version(client, ref, model_uri, version_tags(ref, result, training_set, decision))
        client.set_registered_model_alias(name, CHAMPION if decision.passed else CHALLENGER, str(number))
    event = HistoryEvent(
        name,
        "promote" if decision.passed else "gate_challenger" if to_challenger else "reject",
        number,
        champ_version,
        f"gate ({actor()})",
        "; ".join(decision.reasons),
        decision.metric,
        decision.candidate_score,
        decision.baseline_score,
        decision.champion_score,
        logged["run_id"],
        json.dumps({**winner.evaluation.to_dict(), "candidate": winner.name}),  # `models list` reads it
    )
    append_history(workspace, event)
    champion = current_champion(client, name)
    report = training_report(ref, result, training_set, logged, decision, event, champ_basis, champion)
    write_json(report_path(workspace, ref), report)
    return report


def training_report(
    ref: ModelRef,
    result: TrainingResult,
    training_set: TrainingSet,
    logged: dict[str, Any],
    decision: GateDecision,
    event: HistoryEvent,
    champion_basis: str,
    champion: Any,
) -> dict[str, Any]:
    """What `foundation train` / `run` print and the dashboard shows: the comparison, the winner, the verdict."""
    return {
        "model": ref.registered_name,
        "usecase": ref.usecase,
        "spec": ref.spec.name,
        "trained_at": event.at.isoformat(timespec="seconds"),
        "title": logged["title"],
        "metric": ref.spec.selection.metric,
        "currency": _currency(ref),
        "task": "regression" if ref.spec.is_regression else "classification",
        "comparison": logged["comparison"],
        "thresholds": {c.name: c.threshold for c in result.candidates},
        "importance": {c.name: c.importance for c in result.candidates},  # the dashboard shows the winner's
        "split": result.split.describe(),
        "feature_table_version": training_set.delta_version,
        "winner": result.winner.name,
        "logged_model": logged["model_uris"][result.winner.name],
        "registered_version": event.version,
        "gate": {**decision.to_dict(), "champion_basis": champion_basis},
        "champion": int(champion.version) if champion else None,
        "run_id": logged["run_id"],
        "seconds": {**{k: round(v, 3) for k, v in result.seconds.items()}, "mlflow": round(logged["seconds"], 3)},
    }


def _currency(ref: ModelRef) -> str | None:
    selection = ref.spec.selection
    cost = selection.error_cost if ref.spec.is_regression else selection.cost
    return cost.currency if cost else None


def version_tags(
    ref: ModelRef, result: TrainingResult, training_set: TrainingSet, decision: GateDecision
) -> dict[str, str]:
    """What a registry version carries: the candidate, its score and threshold, its features, the gate's verdict."""
    winner = result.winner
    return {
        "foundation.candidate": winner.name,
        "foundation.metric": ref.spec.selection.metric,
        "foundation.score": str(winner.evaluation.score),
        "foundation.baseline_score": str(result.baseline.score),
        **({"foundation.threshold": str(winner.threshold)} if winner.threshold is not None else {}),
        "foundation.task": "regression" if ref.spec.is_regression else "classification",
        "foundation.train_end": str(result.split.train_end),
        "foundation.features": json.dumps(result.features),
        "foundation.feature_table_version": str(training_set.delta_version),
        "foundation.gate": "passed" if decision.passed else "rejected",
        "foundation.gate_reasons": "; ".join(decision.reasons),
    }


def register_version(client: Any, ref: ModelRef, model_uri: str, tags: dict[str, str]) -> int:
    """A new version of the use case's registered model (created on its first version); returns its number."""
    name = ref.registered_name
    if client.search_registered_models(filter_string=f"name = '{name}'") == []:
        client.create_registered_model(name, description=ref.spec.description, tags={"foundation.usecase": ref.usecase})
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints registration notices: keep stdout for --json
        version = mlflow.register_model(model_uri, name, tags=tags)
    return int(version.version)


def run_training(workspace: Workspace, ref: ModelRef) -> dict[str, Any]:
    """All steps in process, without Dagster (the assets run the same functions one per step)."""
    training_set = load_training_set(workspace, ref)
    result = fit_candidates(training_set, ref)
    logged = log_evaluation(workspace, ref, result, training_set.delta_version)
    return register_and_gate(workspace, ref, result, training_set, logged)
