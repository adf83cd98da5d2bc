"""Monitoring: feature drift (PSI) between training and recent data, and realised precision/recall per week (for
a regression: realised MAE, RMSE and bias per week).

PSI (population stability index) per feature: bins from the reference's deciles (categories for text columns),
PSI = sum((cur% - ref%) * ln(cur% / ref%)), with a small floor on empty bins. Conventional reading (Siddiqi,
credit scoring): < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift; the spec sets both cut-offs.
Realised performance joins each prediction with the label that arrived later (rows whose label window is over).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import open_delta, storage_options_of, write_delta
from foundation.engine.sql import quote_ident, quote_literal
from foundation.specs.model import ModelSpec
from mlops.dataset import feature_table_uri, read_feature_table
from mlops.inference import predictions_uri
from mlops.kpis import publish_realised_kpis
from mlops.registry import RegistryError, current_champion, mlflow_client, read_json, write_json

FLOOR = 1e-4  # share given to an empty bin, so ln() stays finite


def psi(reference: pd.Series, current: pd.Series, bins: int = 10) -> float:
    """Population stability index of one feature (nulls are a bin of their own)."""
    if pd.api.types.is_numeric_dtype(reference.dtype) or pd.api.types.is_bool_dtype(reference.dtype):
        ref = reference.astype("float64")
        cur = current.astype("float64")
        edges = np.unique(np.nanquantile(ref.dropna(), np.linspace(0, 1, bins + 1))) if ref.notna().any() else []
        inner = edges[1:-1] if len(edges) > 2 else edges
        ref_bins = np.where(ref.isna(), -1, np.searchsorted(inner, ref, side="right"))
        cur_bins = np.where(cur.isna(), -1, np.searchsorted(inner, cur, side="right"))
    else:
        ref_bins = reference.astype("object").fillna("<null>").to_numpy()
        cur_bins = current.astype("object").fillna("<null>").to_numpy()
    labels = np.union1d(pd.unique(ref_bins), pd.unique(cur_bins))
    ref_share = pd.Series(ref_bins).value_counts(normalize=True).reindex(labels, fill_value=0).to_numpy()
    cur_share = pd.Series(cur_bins).value_counts(normalize=True).reindex(labels, fill_value=0).to_numpy()
    ref_share = np.maximum(ref_share, FLOOR)
    cur_share = np.maximum(cur_share, FLOOR)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


@dataclass(frozen=True)
class DriftResult:
    feature: str
    psi: float
    status: str  # stable | warn | drift
    warn_at: float = 0.1  # this feature's cut-offs: the spec's, raised to its own in-training wander when calibrated
    error_at: float = 0.25
    wander: float | None = None  # the largest PSI of a training window against all of training (None: not measured)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WindowDrift:
    """PSI of one feature in one window of `drift.recent` time units against the reference (training) rows."""

    feature: str
    window_start: str
    window_end: str
    in_training: bool  # a window inside the reference: what calibration measures (the feature's usual wander)
    psi: float
    status: str  # stable | warn | drift against the feature's own cut-offs (in-training windows: "training")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recent_mask(times: pd.Series, recent: int) -> np.ndarray:
    """The latest `recent` time units (days for dates) of the table."""
    end = times.max()
    if isinstance(end, (pd.Timestamp, np.datetime64)) or hasattr(end, "toordinal"):
        start = pd.Timestamp(end) - pd.Timedelta(days=recent - 1)
        return (pd.to_datetime(times) >= start).to_numpy()
    return (times > end - recent).to_numpy()


MAX_WINDOWS = 12  # windows measured on each side of the training end (history drawn on the dashboard)


def time_units(times: pd.Series) -> np.ndarray:
    """The time column as numbers of its own unit: days for dates and timestamps, the value for an ordinal."""
    if is_time(times):
        return (pd.to_datetime(times).to_numpy().astype("datetime64[D]").astype("int64")).astype("float64")
    return times.astype("float64").to_numpy()


def windows_back(units: np.ndarray, mask: np.ndarray, size: int, limit: int = MAX_WINDOWS) -> list[np.ndarray]:
    """Row masks of consecutive windows of `size` units inside `mask`, newest first, counted back from the newest
    unit in it; only whole windows (the oldest, partial one is left out)."""
    if not mask.any():
        return []
    end, start = units[mask].max(), units[mask].min()
    out = []
    for k in range(limit):
        low, high = end - (k + 1) * size, end - k * size  # the window is (low, high]
        if low + 1 < start:
            break
        out.append(mask & (units > low) & (units <= high))
    return out


def _status(value: float, warn_at: float, error_at: float) -> str:
    return "drift" if value > error_at else "warn" if value > warn_at else "stable"


def _label(times: pd.Series, rows: np.ndarray, edge: str) -> str:
    value = times[rows].min() if edge == "start" else times[rows].max()
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def feature_drift_history(
    frame: pd.DataFrame, features: list[str], spec: ModelSpec, reference_end: object | None = None
) -> tuple[list[DriftResult], list[WindowDrift]]:
    """The drift check and its history, in one pass.

    Reference = rows up to `reference_end` (the champion's training end; else all rows before the recent window).
    Every window of `drift.recent` units inside the reference is scored against the whole reference: that is the
    feature's usual wander (an autocorrelated feature, e.g. a temperature that random-walks, wanders a lot). With
    `drift.calibrate`, a feature's cut-offs are raised to its own wander (warn: the median window, error: the
    largest), so it raises an alert only when it leaves that wander. The windows after the reference, newest first,
    make the history; the newest one (the latest `recent` units) is the check."""
    times = frame[spec.time]
    units = time_units(times)
    recent = recent_mask(times, spec.monitoring.drift.recent)
    reference = ~recent
    if reference_end is not None:  # a tag: text; compare in the time column's own type
        if is_time(times):
            reference &= (pd.to_datetime(times) <= pd.Timestamp(reference_end)).to_numpy()
        else:
            reference &= (times <= type(times.iloc[0])(reference_end)).to_numpy()
    if not reference.any() or not recent.any():
        return [], []
    cut = spec.monitoring.drift
    inside = windows_back(units, reference, cut.recent)
    after = [recent, *windows_back(units, ~reference & ~recent, cut.recent, MAX_WINDOWS - 1)]
    results: list[DriftResult] = []
    history: list[WindowDrift] = []
    for feature in features:
        ref_values = frame.loc[reference, feature]
        wander = [psi(ref_values, frame.loc[w, feature]) for w in inside]
        warn_at, error_at = cut.warn_psi, cut.error_psi
        if cut.calibrate and len(wander) >= 2:
            warn_at, error_at = max(warn_at, float(np.median(wander))), max(error_at, max(wander))
        for rows, value in zip(inside, wander, strict=True):
            start, end = _label(times, rows, "start"), _label(times, rows, "end")
            history.append(WindowDrift(feature, start, end, True, round(value, 4), "training"))
        for rows in after:
            value = psi(ref_values, frame.loc[rows, feature])
            start, end = _label(times, rows, "start"), _label(times, rows, "end")
            history.append(WindowDrift(feature, start, end, False, round(value, 4), _status(value, warn_at, error_at)))
        value = psi(ref_values, frame.loc[recent, feature])
        results.append(
            DriftResult(
                feature,
                round(value, 4),
                _status(value, warn_at, error_at),
                round(warn_at, 4),
                round(error_at, 4),
                round(max(wander), 4) if wander else None,
            )
        )
    return sorted(results, key=lambda r: -r.psi / r.error_at), history


def feature_drift(
    frame: pd.DataFrame, features: list[str], spec: ModelSpec, reference_end: object | None = None
) -> list[DriftResult]:
    """PSI of each feature, recent window against the reference, against each feature's cut-offs; the features
    furthest beyond their own error cut-off first."""
    return feature_drift_history(frame, features, spec, reference_end)[0]


def is_time(times: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(times.dtype) or bool(len(times) and hasattr(times.iloc[0], "toordinal"))


def drift_passed(results: list[DriftResult], spec: ModelSpec) -> bool:
    return sum(r.status == "drift" for r in results) <= spec.monitoring.drift.max_drifting_features


def _realised_parts(spec: ModelSpec, time_is_date: bool, train_ends: Mapping[int, str] | None) -> tuple[str, ...]:
    """The join keys, the 'outcome known' condition, the target and the week's day of the realised queries."""
    keys = " and ".join(f"p.{quote_ident(c)} = f.{quote_ident(c)}" for c in (*spec.entity, spec.time))
    known = f"and ({spec.row_filter})" if spec.row_filter else ""
    if train_ends:
        after = f"p.{quote_ident(spec.time)} >"  # the literal takes the column's type (date, timestamp, number)
        cases = " ".join(f"when {int(v)} then {after} {quote_literal(end)}" for v, end in sorted(train_ends.items()))
        known += f" and coalesce(case p.model_version {cases} end, true)"
    target = f"f.{quote_ident(spec.target)}"
    when = f"cast(p.{quote_ident(spec.time)} as date)" if time_is_date else "cast(p.scored_at as date)"
    return keys, known, target, when


def realised_sql(
    predictions: str, features: str, spec: ModelSpec, time_is_date: bool, train_ends: Mapping[int, str] | None = None
) -> str:
    """Per ISO week (of the predicted day; of the scoring day for an ordinal time): outcomes known so far, i.e.
    rows passing the spec's row_filter. `train_ends` (model version -> its training's last time value) leaves out
    the rows a version was trained on: scoring them says nothing about the model in use (a version without one
    keeps all its rows)."""
    keys, known, target, when = _realised_parts(spec, time_is_date, train_ends)
    return f"""
        select date_trunc('week', {when}) as week,
               count(*) as predictions,
               count(*) filter (where p.label and {target}) as tp,
               count(*) filter (where p.label and not {target}) as fp,
               count(*) filter (where not p.label and {target}) as fn,
               count(*) filter (where not p.label and not {target}) as tn
        from {predictions} p join {features} f on {keys}
        where {target} is not null {known}
        group by all order by week
    """


def realised_error_sql(
    predictions: str, features: str, spec: ModelSpec, time_is_date: bool, train_ends: Mapping[int, str] | None = None
) -> str:
    """A regression's `realised_sql`: per ISO week, the sums of the residuals (predicted `score` - actual), of
    their absolute values and of their squares, so that any run of weeks pools exactly into MAE, RMSE and bias."""
    keys, known, target, when = _realised_parts(spec, time_is_date, train_ends)
    residual = f"(p.score - {target})"
    return f"""
        select date_trunc('week', {when}) as week,
               count(*) as predictions,
               sum(abs({residual})) as abs_error,
               sum({residual} * {residual}) as sq_error,
               sum({residual}) as error
        from {predictions} p join {features} f on {keys}
        where {target} is not null and p.score is not null {known}
        group by all order by week
    """


def _scored_and_features(
    con: duckdb.DuckDBPyConnection, predictions_uri: str, features_uri: str, storage_options: dict[str, str] | None
) -> tuple[str, str]:
    """The batch predictions and the feature table as relations the realised-outcome queries join."""
    predictions = delta_relation_sql(con, predictions_uri, storage_options=storage_options, empty_name="_p")
    features = delta_relation_sql(con, features_uri, storage_options=storage_options, empty_name="_f")
    return predictions, features


def realised_performance(
    con: duckdb.DuckDBPyConnection,
    predictions_uri: str,
    features_uri: str,
    spec: ModelSpec,
    time_is_date: bool,
    train_ends: Mapping[int, str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> pd.DataFrame:
    weekly_sql = realised_sql(*_scored_and_features(con, predictions_uri, features_uri, storage_options), spec,
                              time_is_date, train_ends)  # fmt: skip
    frame = con.execute(weekly_sql).df()
    frame["precision"] = frame.tp / (frame.tp + frame.fp).where(frame.tp + frame.fp > 0)
    frame["recall"] = frame.tp / (frame.tp + frame.fn).where(frame.tp + frame.fn > 0)
    return frame


def performance_verdict(weekly: pd.DataFrame, spec: ModelSpec) -> dict[str, Any]:
    """Pooled precision and recall over the latest `weeks` weeks with known outcomes, against the spec's floors."""
    cut = spec.monitoring.performance
    latest = weekly.tail(cut.weeks)
    tp, fp, fn = int(latest.tp.sum()), int(latest.fp.sum()), int(latest.fn.sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    problems = []
    if cut.min_precision is not None and precision is not None and precision < cut.min_precision:
        problems.append(f"realised precision {precision:.2f} < {cut.min_precision}")
    if cut.min_recall is not None and recall is not None and recall < cut.min_recall:
        problems.append(f"realised recall {recall:.2f} < {cut.min_recall}")
    return {
        "weeks": len(latest),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "passed": not problems,
        "problems": problems,
    }


def realised_errors(
    con: duckdb.DuckDBPyConnection,
    predictions_uri: str,
    features_uri: str,
    spec: ModelSpec,
    time_is_date: bool,
    train_ends: Mapping[int, str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> pd.DataFrame:
    """A regression's weekly realised error: the sums of `realised_error_sql`, and each week's MAE, RMSE, bias."""
    weekly_sql = realised_error_sql(*_scored_and_features(con, predictions_uri, features_uri, storage_options), spec,
                                    time_is_date, train_ends)  # fmt: skip
    frame = con.execute(weekly_sql).df()
    frame["mae"] = frame.abs_error / frame.predictions
    frame["rmse"] = np.sqrt(frame.sq_error / frame.predictions)
    frame["bias"] = frame.error / frame.predictions
    return frame


def error_verdict(weekly: pd.DataFrame, spec: ModelSpec) -> dict[str, Any]:
    """A regression's `performance_verdict`: MAE, RMSE and bias pooled over the latest `weeks` weeks with known
    outcomes, against the spec's ceilings (`max_mae`, `max_rmse`; `max_abs_bias`: the residuals' drift away from
    zero, i.e. the forecasts running systematically short or over)."""
    cut = spec.monitoring.performance
    latest = weekly.tail(cut.weeks)
    n = int(latest.predictions.sum())
    mae = float(latest.abs_error.sum()) / n if n else None
    rmse = float(np.sqrt(latest.sq_error.sum() / n)) if n else None
    bias = float(latest.error.sum()) / n if n else None
    problems = []
    if cut.max_mae is not None and mae is not None and mae > cut.max_mae:
        problems.append(f"realised MAE {mae:.2f} > {cut.max_mae}")
    if cut.max_rmse is not None and rmse is not None and rmse > cut.max_rmse:
        problems.append(f"realised RMSE {rmse:.2f} > {cut.max_rmse}")
    if cut.max_abs_bias is not None and bias is not None and abs(bias) > cut.max_abs_bias:
        problems.append(f"realised bias {bias:.2f} beyond ±{cut.max_abs_bias:g}")
    return {
        "weeks": len(latest),
        "predictions": n,
        "mae": mae,
        "rmse": rmse,
        "bias": bias,
        "precision": None,  # the classifier's figures, absent: the checks' metadata reads the same keys
        "recall": None,
        "passed": not problems,
        "problems": problems,
    }


# -- the I/O edge: one monitoring pass, written to the lakehouse --------------------------------------------------


def monitoring_uri(workspace: Any, ref: Any, what: str) -> str:
    return f"{workspace.lakehouse_root.rstrip('/')}/ml/{ref.usecase}/{ref.spec.name}/{what}"


def monitoring_report_path(workspace: Any, ref: Any) -> Path:
    """The latest monitoring pass as JSON, beside the training report: what the dashboard draws."""
    return workspace.ml_state_dir / ref.registered_name / "monitoring_report.json"


REGRESSION_FIGURES = ("mae", "rmse", "bias")
CLASSIFIER_FIGURES = ("precision", "recall")


def validation_figures(client: Any, champion: Any, regression: bool = False) -> dict[str, float | None]:
    """The champion's precision and recall (a regression's MAE, RMSE and bias) on its validation rows, as its
    training run logged them."""
    metrics = client.get_run(champion.run_id).data.metrics if champion.run_id else {}
    return {name: metrics.get(name) for name in (REGRESSION_FIGURES if regression else CLASSIFIER_FIGURES)}


WEEKLY_COLUMNS = ["week", "predictions", "tp", "fp", "fn", "tn", "precision", "recall"]
WEEKLY_ERROR_COLUMNS = ["week", "predictions", "abs_error", "sq_error", "error", "mae", "rmse", "bias"]


def _weekly(con: duckdb.DuckDBPyConnection, workspace: Any, ref: Any, time_is_date: bool, train_ends: Any) -> Any:
    regression = ref.spec.is_regression
    try:
        open_delta(workspace, predictions_uri(workspace, ref))
    except TableNotFoundError:
        return pd.DataFrame(columns=WEEKLY_ERROR_COLUMNS if regression else WEEKLY_COLUMNS)
    features_uri = feature_table_uri(workspace, ref.usecase, ref.spec)
    predictions = predictions_uri(workspace, ref)
    options = storage_options_of(workspace)
    measure = realised_errors if regression else realised_performance
    return measure(con, predictions, features_uri, ref.spec, time_is_date, train_ends, options)


def run_monitoring(workspace: Any, ref: Any) -> dict[str, Any]:
    """Drift of the champion's features (with its history per window) and realised performance against the
    validation figures; written as Delta (a version per pass), as the dashboard's JSON, and as the realised-
    performance KPIs of the catalogue."""
    spec = ref.spec
    client = mlflow_client(workspace)
    champion = current_champion(client, ref.registered_name)
    if champion is None:
        raise RegistryError(f"{ref.registered_name} has no champion: nothing to monitor yet")
    tags = champion.tags or {}
    features = json.loads(tags.get("foundation.features", "[]"))
    versions = client.search_model_versions(f"name = '{ref.registered_name}'")
    train_ends = {int(v.version): v.tags["foundation.train_end"] for v in versions if "foundation.train_end" in v.tags}
    frame, version = read_feature_table(workspace, ref.usecase, spec, training=False)
    drift, history = feature_drift_history(frame, features, spec, tags.get("foundation.train_end"))
    con = duckdb.connect()
    try:
        weekly = _weekly(con, workspace, ref, is_time(frame[spec.time]), train_ends)
    finally:
        con.close()
    verdict = error_verdict(weekly, spec) if spec.is_regression else performance_verdict(weekly, spec)
    result = {
        "model": ref.registered_name,
        "champion": int(champion.version),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "drift": [d.to_dict() for d in drift],
        "drift_passed": drift_passed(drift, spec),
        "drift_history": [w.to_dict() for w in history],
        "weekly": _records(weekly),
        "performance": verdict,
        "task": "regression" if spec.is_regression else "classification",
        "validation": validation_figures(client, champion, spec.is_regression),
    }
    _write_tables(workspace, ref, result, weekly, version)
    result["kpis"] = publish_realised_kpis(workspace, ref, result["weekly"], result["validation"])
    write_json(monitoring_report_path(workspace, ref), result)
    return result


def _records(weekly: pd.DataFrame) -> list[dict[str, Any]]:
    """Weekly rows as JSON-able records: the week as text, an undefined precision or recall as None (not NaN)."""
    frame = weekly.assign(week=weekly.week.astype(str)).astype(object)
    return frame.where(frame.notna(), None).to_dict(orient="records")


def _write_tables(
    workspace: Any, ref: Any, result: dict[str, Any], weekly: pd.DataFrame, feature_table_version: int
) -> None:
    """`drift` (the check's rows), `drift_history` (every window) and `realised_performance` (a regression's
    `realised_error`, per week) as Delta."""
    stamp = {"model_version": result["champion"], "feature_table_version": feature_table_version}
    empty = {"feature": "", "psi": 0.0, "status": "none"}
    tables = {
        "drift": [{**d, **stamp} for d in result["drift"]] or [{**empty, **stamp}],
        "drift_history": [{**w, **stamp} for w in result["drift_history"]],
    }
    written = {name: pa.Table.from_pylist(rows) for name, rows in tables.items() if rows}
    if len(weekly):  # a regression's weeks are its realised error (MAE, RMSE, bias), a classifier's its hits
        name = "realised_error" if "mae" in weekly.columns else "realised_performance"
        written[name] = pa.Table.from_pandas(weekly, preserve_index=False)
    for name, table in written.items():
        if table.num_rows:
            uri = monitoring_uri(workspace, ref, name)
            write_delta(workspace, uri, table, mode="overwrite", schema_mode="overwrite")


def read_monitoring_report(workspace: Any, ref: Any) -> dict[str, Any] | None:
    """The latest monitoring pass of a model (None before the first), for the dashboard."""
    path = monitoring_report_path(workspace, ref)
    return read_json(path) if path.exists() else None
