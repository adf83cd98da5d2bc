"""The model spec format (`usecases/<uc>/ml/<model>.yaml`), as typed pydantic models.

Parsing only: no I/O. `foundation.core.workspace.load_model_specs` finds and reads the files; a candidate's class is
imported and checked by `foundation.specs.estimators`; what needs the data model (does the feature table exist, has it
these columns) is checked by `mlops.feature_table_checks`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, ValidationError, field_validator, model_validator

from foundation.specs.automation import AutomationSpec
from foundation.specs.errors import SpecError
from foundation.specs.fields import Email, Identifier, Schedule, Spec, Text
from foundation.specs.loading import Declared, SpecKind

# Candidate shortcuts -> scikit-learn classes. Anything else is a dotted class path (`package.module.Class`).
ESTIMATORS: dict[str, str] = {
    "random_forest": "sklearn.ensemble.RandomForestClassifier",
    "logistic_regression": "sklearn.linear_model.LogisticRegression",
    "decision_tree": "sklearn.tree.DecisionTreeClassifier",
    "gradient_boosting": "sklearn.ensemble.HistGradientBoostingClassifier",
}
# The same four families for `task: regression`.
REGRESSORS: dict[str, str] = {
    "random_forest": "sklearn.ensemble.RandomForestRegressor",
    "linear_regression": "sklearn.linear_model.Ridge",
    "decision_tree": "sklearn.tree.DecisionTreeRegressor",
    "gradient_boosting": "sklearn.ensemble.HistGradientBoostingRegressor",
}
# Classification metrics are higher-is-better; regression metrics (errors, their cost) lower-is-better.
METRICS = ("f1", "precision", "recall", "recall_at_precision", "savings")
ERROR_METRICS = ("mae", "rmse", "mape", "cost")


def _estimator(value: str) -> str:
    if value in ESTIMATORS or value in REGRESSORS or ("." in value and all(p.isidentifier() for p in value.split("."))):
        return value
    raise ValueError(
        f"{value!r} is neither a known estimator ({', '.join(dict.fromkeys([*ESTIMATORS, *REGRESSORS]))}) nor a "
        "dotted class path like sklearn.ensemble.ExtraTreesClassifier"
    )


Estimator = Annotated[str, AfterValidator(_estimator)]


class FeatureSelection(Spec):
    include: list[Identifier] | None = Field(
        None, description="The features; omitted: every column but entity, time, target and `exclude`."
    )
    exclude: list[Identifier] = Field(default_factory=list, description="Columns never used as features.")


class SplitSpec(Spec):
    """How rows are split into training and validation (docs/mlops.md#splits): by time (validation strictly after
    training, with a gap for the label window), by group (no unit on both sides) or at random."""

    by: Literal["time", "group", "random"] = Field(
        "time",
        description="time: the latest time values validate; group: a share of the units (machines, customers) "
        "validates, none of them in training; random: a share of the rows (both stratified by the label).",
    )
    group: Identifier | None = Field(
        None, description="With by: group, the unit column (default: the first entity column)."
    )
    folds: int | None = Field(
        None,
        ge=2,
        le=20,
        description="With by: group or random, K-fold cross-validation instead of one hold-out (small data): every "
        "row validates once; the comparison shows the pooled counts and each fold's spread. With by: time, a "
        "rolling-origin backtest: the validation share cut into K consecutive windows, each validated by a model "
        "trained on what came before it (forecasts).",
    )
    validation_fraction: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="Share used for validation: of the distinct time values (the latest ones), of the units, or of "
        "the rows.",
    )
    gap: int = Field(
        0,
        ge=0,
        description="Time units (days for a date column) left out between training and validation: at least the "
        "label horizon, so no training label looks into the validation period.",
    )
    calibration_fraction: float = Field(
        0.2, gt=0, lt=1, description="With `threshold: auto`: the latest share of training used to pick the threshold."
    )

    @model_validator(mode="after")
    def _kind_fits(self) -> SplitSpec:
        if self.by != "group" and self.group is not None:
            raise ValueError("split.group is the unit column of split.by: group")
        return self


class BaselineSpec(Spec):
    """How things are done today, evaluated exactly like a model on the same validation rows."""

    name: Text = "As is"
    description: str = ""
    rule: Text | None = Field(
        None, description="Classification: SQL boolean expression over the feature table's columns (DuckDB dialect)."
    )
    expression: Text | None = Field(
        None,
        description="Regression: SQL numeric expression over the feature table's columns, the value predicted today "
        "(e.g. last week's value `volume_lag_1`, a moving average `volume_avg_4`).",
    )


class CandidateSpec(Spec):
    name: Identifier = Field(description="Name in the comparison table and the MLflow run.")
    estimator: Estimator = Field(description=f"One of {', '.join(ESTIMATORS)}, or a dotted classifier class path.")
    params: dict[str, Any] = Field(default_factory=dict, description="Hyper-parameters of the estimator.")
    _task: str = PrivateAttr("classification")  # set by the model spec: which family a shortcut names

    @property
    def class_path(self) -> str:
        shortcuts = REGRESSORS if self._task == "regression" else ESTIMATORS
        return shortcuts.get(self.estimator, self.estimator)


class CostSpec(Spec):
    """Business costs of each outcome, in `currency`: they make the `savings` metric."""

    currency: str = "EUR"
    false_negative: float = Field(description="A missed event (e.g. a breakdown on the road).")
    false_positive: float = Field(0, description="An alert that was not needed (e.g. a useless workshop visit).")
    true_positive: float = Field(0, description="Acting on a right alert (e.g. a planned repair).")


class ErrorCostSpec(Spec):
    """Regression: what one unit of error costs the business (e.g. a claim handled by a temp, or a clerk idle)."""

    currency: str = "EUR"
    per_unit: float = Field(gt=0, description="Cost of one unit of error, under or over.")
    per_unit_over: float | None = Field(
        None, ge=0, description="Cost of one unit of over-prediction, when it differs from `per_unit` (under)."
    )


class SelectionSpec(Spec):
    metric: Literal["f1", "precision", "recall", "recall_at_precision", "savings", "mae", "rmse", "mape", "cost"] = (
        Field(
            "f1",  # task regression: mae (the model spec's default)
            description="The metric agreed with the business. Classification (higher is better): f1, precision, "
            "recall, recall_at_precision, savings. Regression (lower is better): mae, rmse, mape, cost.",
        )
    )
    min_precision: float | None = Field(
        None, ge=0, le=1, description="recall_at_precision: recall counts only when precision reaches this."
    )
    cost: CostSpec | None = Field(None, description="Needed by `savings`; shown in the comparison when given.")
    error_cost: ErrorCostSpec | None = Field(
        None, description="Regression: needed by `cost`; shown in the comparison when given."
    )

    @property
    def lower_is_better(self) -> bool:
        return self.metric in ERROR_METRICS

    @model_validator(mode="after")
    def _needs(self) -> SelectionSpec:
        if self.metric == "recall_at_precision" and self.min_precision is None:
            raise ValueError("metric recall_at_precision needs `min_precision:` (e.g. 0.3)")
        if self.metric == "savings" and self.cost is None:
            raise ValueError("metric savings needs `cost:` (false_negative, false_positive, true_positive)")
        if self.metric == "cost" and self.error_cost is None:
            raise ValueError("metric cost needs `error_cost:` (per_unit, and per_unit_over if it differs)")
        return self


class GateSpec(Spec):
    """What a new model must do to become the champion (margins in the selection metric's units)."""

    min_improvement_over_baseline: float = Field(0.0, description="Beat the 'as is' rule by at least this.")
    min_improvement_over_champion: float = Field(0.0, description="Beat the current champion by at least this.")
    challenger: bool = Field(
        False,
        description="A winner that beats 'as is' by its margin but not the champion by its margin is registered "
        "anyway as the `challenger` (scored in shadow by the API, never returned) instead of being rejected.",
    )


class DriftSpec(Spec):
    warn_psi: float = Field(0.1, gt=0, description="PSI above this on a feature: warning.")
    error_psi: float = Field(0.25, gt=0, description="PSI above this on a feature: the drift check fails.")
    recent: int = Field(14, gt=0, description="Recent window: the latest N time units of the feature table.")
    max_drifting_features: int = Field(0, ge=0, description="How many features may exceed error_psi.")
    calibrate: bool = Field(
        True,
        description="Raise each feature's cut-offs to its own in-training wander: the PSI of each `recent`-long "
        "window of the training period against all of it (warn: the median, error: the largest), so an "
        "autocorrelated feature alerts only when it leaves its usual wander (docs/mlops.md#monitoring).",
    )


class PerformanceSpec(Spec):
    min_precision: float | None = Field(None, ge=0, le=1, description="Realised precision below this fails.")
    min_recall: float | None = Field(None, ge=0, le=1, description="Realised recall below this fails.")
    weeks: int = Field(4, gt=0, description="Judge the latest N weeks with known outcomes.")
    # task: regression (in the target's unit; docs/mlops.md#monitoring-a-regression)
    max_mae: float | None = Field(None, ge=0, description="Regression: realised MAE above this fails.")
    max_rmse: float | None = Field(None, ge=0, description="Regression: realised RMSE above this fails.")
    max_abs_bias: float | None = Field(
        None, ge=0, description="Regression: a realised mean residual (predicted - actual) beyond ± this fails."
    )


class MonitoringSpec(Spec):
    drift: DriftSpec = Field(default_factory=DriftSpec)
    performance: PerformanceSpec = Field(default_factory=PerformanceSpec)
    retrain_on_failure: bool = Field(True, description="Retrain when a monitoring check fails.")


class SchedulesSpec(Spec):
    training: Schedule = Field("manual", description="Cron of (re)training, or manual.")
    inference: Schedule = Field("manual", description="Cron of batch scoring, or manual.")


class ModelSpec(Spec):
    """One model of a use case: the data, the baseline, the candidates, how to choose and when to run."""

    name: Identifier = Field(description="The model's name; registered in MLflow as `<usecase>__<name>`.")
    description: Text = Field(description="The business question, as a prediction.")
    owner: Email = Field(description="The data scientist answering for it.")
    task: Literal["classification", "binary_classification", "regression"] = Field(
        "classification",
        description="classification (yes/no: the target is boolean, models give a probability and a threshold "
        "makes the alert) or regression (a number: the target is numeric, models predict its value).",
    )
    feature_table: Identifier = Field(description="A dbt table model of the use case, read from its gold snapshot.")
    entity: list[Identifier] = Field(min_length=1, description="Columns identifying what is predicted (e.g. truck_id).")
    time: Identifier = Field(description="Date, timestamp or ordinal column: the split and monitoring follow it.")
    target: Identifier = Field(description="The label column: boolean (classification) or numeric (regression).")
    row_filter: str | None = Field(
        None, description="SQL condition on rows usable for training (e.g. label_window_complete)."
    )
    features: FeatureSelection = Field(default_factory=FeatureSelection)
    split: SplitSpec = Field(default_factory=SplitSpec)
    baseline: BaselineSpec
    candidates: list[CandidateSpec] = Field(min_length=1)
    threshold: float | Literal["auto"] = Field(
        "auto", description="Decision threshold on the score, or `auto`: picked on the calibration slice."
    )
    selection: SelectionSpec = Field(default_factory=SelectionSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    schedules: SchedulesSpec = Field(default_factory=SchedulesSpec)
    automation: AutomationSpec | None = Field(
        None,
        description="When batch predictions and monitoring refresh (default: the use case's, else foundation.yaml's); "
        "training follows schedules.training.",
    )
    seed: int = Field(42, description="Seed of every estimator: the same data and seed give the same model.")

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data: Any) -> Any:
        """task: regression selects on `mae` unless told otherwise (classification: f1)."""
        if isinstance(data, dict) and data.get("task") == "regression":
            selection = data.get("selection") or {}
            if isinstance(selection, dict) and "metric" not in selection:
                return {**data, "selection": {**selection, "metric": "mae"}}
        return data

    @model_validator(mode="after")
    def _task_fits(self) -> ModelSpec:
        """The baseline, the metric and the candidates' shortcuts follow `task`."""
        regression = self.is_regression
        if regression != self.selection.lower_is_better:
            allowed = ERROR_METRICS if regression else METRICS
            raise ValueError(
                f"selection.metric {self.selection.metric} does not fit task {self.task}: use one of "
                + ", ".join(allowed)
            )
        if regression and self.baseline.expression is None:
            raise ValueError("task regression needs baseline.expression (a number, e.g. last week's value)")
        if not regression and self.baseline.rule is None:
            raise ValueError(
                "baseline.rule is required (a boolean SQL expression); baseline.expression is for task: regression"
            )
        for candidate in self.candidates:
            candidate._task = "regression" if regression else "classification"
            if regression and candidate.estimator == "logistic_regression":
                raise ValueError(
                    f"candidate {candidate.name}: logistic_regression is a classifier; for task regression use "
                    "linear_regression"
                )
        return self

    @field_validator("candidates")
    @classmethod
    def _unique_names(cls, candidates: list[CandidateSpec]) -> list[CandidateSpec]:
        names = [c.name for c in candidates]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"candidate names must be unique: {', '.join(duplicates)}")
        return candidates

    @field_validator("threshold")
    @classmethod
    def _threshold_in_range(cls, threshold: float | str) -> float | str:
        if isinstance(threshold, float) and not 0 < threshold < 1:
            raise ValueError("threshold must be between 0 and 1 (exclusive), or auto")
        return threshold

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        # Time and entity columns are features when `include` names them (a counter such as days in service can be
        # both the time column and a feature); the target never is.
        if self.features.include is not None and self.target in self.features.include:
            raise ValueError(f"features must not include the target column: {self.target}")
        return self

    def registered_name(self, usecase: str) -> str:
        return f"{usecase}__{self.name}"

    def feature_columns(self, columns: list[str]) -> list[str]:
        """The features among a table's columns: `include` as given, else all but reserved and excluded."""
        if self.features.include is not None:
            return list(self.features.include)
        reserved = {self.target, self.time, *self.entity, *self.features.exclude}
        return [c for c in columns if c not in reserved]


MODEL_KIND = SpecKind(ModelSpec, "model", "docs/mlops.md")


@dataclass(frozen=True)
class ModelRef(Declared[ModelSpec]):
    """A validated model spec and where it was declared."""

    @property
    def key(self) -> str:
        return f"{self.usecase}/{self.spec.name}"

    @property
    def registered_name(self) -> str:
        return self.spec.registered_name(self.usecase)

    def line(self, *loc: str | int) -> int | None:
        return self.doc.line_of(tuple(loc))


@dataclass
class ModelScan:
    models: list[ModelRef] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not [e for e in self.errors if e.severity == "error"]


# Required fields a salvaged spec fills with a stand-in, so the checks that need the data model can still run on the
# rest; a check must skip a field listed in `SalvagedSpec.stand_ins` (its value was not written by the user).
_STAND_INS: dict[str, Any] = {
    "name": "unnamed",
    "description": "(missing)",
    "owner": "missing@example.com",
    "feature_table": "missing",
    "entity": ["missing"],
    "time": "missing",
    "target": "missing",
    "baseline": {"rule": "true", "expression": "0"},  # either task
    "candidates": [{"name": "missing", "estimator": "decision_tree"}],
}


@dataclass(frozen=True)
class SalvagedSpec:
    """What is left of an invalid model spec once every refused part is dropped: the other checks (columns, baseline
    rule, candidate classes) run on it, so `foundation check` reports all of a file's mistakes at once."""

    spec: ModelSpec
    stand_ins: frozenset[str]  # top-level fields (`target`) or refused candidates (`candidates[1]`)

    def is_stand_in(self, field: str) -> bool:
        """Whether an error's field (`target`, `candidates[1].params.x`, `entity.0`) lies in a stand-in."""
        return any(field == s or field.startswith((f"{s}.", f"{s}[")) for s in self.stand_ins)


def _reach(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The longest prefix of `loc` that exists in `data` (pydantic adds union labels that are not keys)."""
    node, reached = data, []
    for part in loc:
        in_mapping = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_mapping or in_list):
            break
        node = node[part]
        reached.append(part)
    return tuple(reached)


def _drop(data: Any, path: tuple[str | int, ...]) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]


def _refused_part(data: dict[str, Any], reached: tuple[str | int, ...], stand_ins: set[str]) -> tuple[str | int, ...]:
    """What to drop for a refused value: never one list item (the indexes after it would then name the wrong lines);
    a refused candidate is swapped for a stand-in at its place, any other list is dropped whole."""
    index_at = next((k for k, part in enumerate(reached) if isinstance(part, int)), None)
    if index_at is None:
        return reached
    if reached[:index_at] == ("candidates",):
        i = int(reached[index_at])
        data["candidates"][i] = {"name": f"refused_{i}", "estimator": "decision_tree"}
        stand_ins.add(f"candidates[{i}]")
        return ()
    return reached[:index_at]


def _repair(data: dict[str, Any], errors: list[Any], stand_ins: set[str]) -> bool:
    """Drop each refused part, or stand in for a missing required field or a refused candidate. False when nothing
    could be changed (a rule over the whole spec refused it)."""
    before = len(stand_ins)
    paths: set[tuple[str | int, ...]] = set()
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "missing" and len(loc) == 1 and loc[0] in _STAND_INS and loc[0] not in stand_ins:
            data[str(loc[0])] = copy.deepcopy(_STAND_INS[str(loc[0])])
            stand_ins.add(str(loc[0]))
        elif part := _refused_part(data, _reach(data, loc), stand_ins):
            paths.add(part)
    outermost = {p for p in paths if not any(p[: len(q)] == q for q in paths if len(q) < len(p))}
    for path in outermost:
        _drop(data, path)
    return bool(outermost) or len(stand_ins) > before


def salvage_model_spec(data: Any, *, attempts: int = 20) -> SalvagedSpec | None:
    """Drop what pydantic refuses (an unknown key, a bad value), stand in for missing required fields, and validate
    again until the rest validates. None when nothing is left to check (not a mapping, or a whole-spec rule)."""
    if not isinstance(data, dict):
        return None
    data = copy.deepcopy(data)
    stand_ins: set[str] = set()
    for _ in range(attempts):
        try:
            return SalvagedSpec(ModelSpec.model_validate(data), frozenset(stand_ins))
        except ValidationError as exc:
            if not _repair(data, exc.errors(include_url=False), stand_ins):
                return None
    return None
