"""Monitoring: feature drift (PSI) between training and recent data, and realised precision/recall per week.

PSI (population stability index) per feature: bins from the reference's deciles (categories for text columns),
PSI = sum((cur% - ref%) * ln(cur% / ref%)), with a small floor on empty bins. Conventional reading (Siddiqi,
credit scoring): < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift; the spec sets both cut-offs.
Realised performance joins each prediction with the label that arrived later (rows whose label window is over).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
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
from mlops.registry import RegistryError, current_champion, mlflow_client

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recent_mask(times: pd.Series, recent: int) -> np.ndarray:
    """The latest `recent` time units (days for dates) of the table."""
    end = times.max()
    if isinstance(end, (pd.Timestamp, np.datetime64)) or hasattr(end, "toordinal"):
        start = pd.Timestamp(end) - pd.Timedelta(days=recent - 1)
        return (pd.to_datetime(times) >= start).to_numpy()
    return (times > end - recent).to_numpy()


def feature_drift(
    frame: pd.DataFrame, features: list[str], spec: ModelSpec, reference_end: object | None = None
) -> list[DriftResult]:
    """PSI of each feature: reference = rows up to `reference_end` (the champion's training end; else all rows
    before the recent window), current = the recent window."""
    times = frame[spec.time]
    recent = recent_mask(times, spec.monitoring.drift.recent)
    reference = ~recent
    if reference_end is not None:  # a tag: text; compare in the time column's own type
        if is_time(times):
            reference &= (pd.to_datetime(times) <= pd.Timestamp(reference_end)).to_numpy()
        else:
            reference &= (times <= type(times.iloc[0])(reference_end)).to_numpy()
    results = []
    for feature in features:
        if not reference.any() or not recent.any():
            continue
        value = psi(frame.loc[reference, feature], frame.loc[recent, feature])
        cut = spec.monitoring.drift
        status = "drift" if value > cut.error_psi else "warn" if value > cut.warn_psi else "stable"
        results.append(DriftResult(feature, round(value, 4), status))
    return sorted(results, key=lambda r: -r.psi)


def is_time(times: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(times.dtype) or bool(len(times) and hasattr(times.iloc[0], "toordinal"))


def drift_passed(results: list[DriftResult], spec: ModelSpec) -> bool:
    return sum(r.status == "drift" for r in results) <= spec.monitoring.drift.max_drifting_features


def realised_sql(
    predictions: str, features: str, spec: ModelSpec, time_is_date: bool, train_ends: Mapping[int, str] | None = None
) -> str:
    """Per ISO week (of the predicted day; of the scoring day for an ordinal time): outcomes known so far, i.e.
    rows passing the spec's row_filter. `train_ends` (model version -> its training's last time value) leaves out
    the rows a version was trained on: scoring them says nothing about the model in use (a version without one
    keeps all its rows)."""
    keys = " and ".join(f"p.{quote_ident(c)} = f.{quote_ident(c)}" for c in (*spec.entity, spec.time))
    known = f"and ({spec.row_filter})" if spec.row_filter else ""
    if train_ends:
        after = f"p.{quote_ident(spec.time)} >"  # the literal takes the column's type (date, timestamp, number)
        cases = " ".join(f"when {int(v)} then {after} {quote_literal(end)}" for v, end in sorted(train_ends.items()))
        known += f" and coalesce(case p.model_version {cases} end, true)"
    target = f"f.{quote_ident(spec.target)}"
    when = f"cast(p.{quote_ident(spec.time)} as date)" if time_is_date else "cast(p.scored_at as date)"
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


def realised_performance(
    con: duckdb.DuckDBPyConnection,
    predictions_uri: str,
    features_uri: str,
    spec: ModelSpec,
    time_is_date: bool,
    train_ends: Mapping[int, str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> pd.DataFrame:
    predictions = delta_relation_sql(con, predictions_uri, storage_options=storage_options, empty_name="_p")
    features = delta_relation_sql(con, features_uri, storage_options=storage_options, empty_name="_f")
    frame = con.execute(realised_sql(predictions, features, spec, time_is_date, train_ends)).df()
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


# -- the I/O edge: one monitoring pass, written to the lakehouse --------------------------------------------------


def monitoring_uri(workspace: Any, ref: Any, what: str) -> str:
    return f"{workspace.lakehouse_root.rstrip('/')}/ml/{ref.usecase}/{ref.spec.name}/{what}"


def run_monitoring(workspace: Any, ref: Any) -> dict[str, Any]:
    """Drift of the champion's features and realised performance; both written as Delta (a version per pass)."""
    spec = ref.spec
    champion = current_champion(mlflow_client(workspace), ref.registered_name)
    if champion is None:
        raise RegistryError(f"{ref.registered_name} has no champion: nothing to monitor yet")
    tags = champion.tags or {}
    features = json.loads(tags.get("foundation.features", "[]"))
    versions = mlflow_client(workspace).search_model_versions(f"name = '{ref.registered_name}'")
    train_ends = {int(v.version): v.tags["foundation.train_end"] for v in versions if "foundation.train_end" in v.tags}
    frame, version = read_feature_table(workspace, ref.usecase, spec, training=False)
    drift = feature_drift(frame, features, spec, tags.get("foundation.train_end"))
    con = duckdb.connect()
    try:
        open_delta(workspace, predictions_uri(workspace, ref))
        weekly = realised_performance(
            con,
            predictions_uri(workspace, ref),
            feature_table_uri(workspace, ref.usecase, spec),
            spec,
            is_time(frame[spec.time]),
            train_ends,
            storage_options_of(workspace),
        )
    except TableNotFoundError:
        weekly = pd.DataFrame(columns=["week", "predictions", "tp", "fp", "fn", "tn", "precision", "recall"])
    finally:
        con.close()
    verdict = performance_verdict(weekly, spec)
    drift_table = pa.Table.from_pylist(
        [{**d.to_dict(), "model_version": int(champion.version), "feature_table_version": version} for d in drift]
        or [
            {
                "feature": "",
                "psi": 0.0,
                "status": "none",
                "model_version": int(champion.version),
                "feature_table_version": version,
            }
        ]
    )
    write_delta(
        workspace, monitoring_uri(workspace, ref, "drift"), drift_table, mode="overwrite", schema_mode="overwrite"
    )
    if len(weekly):
        write_delta(
            workspace,
            monitoring_uri(workspace, ref, "realised_performance"),
            pa.Table.from_pandas(weekly, preserve_index=False),
            mode="overwrite",
            schema_mode="overwrite",
        )
    return {
        "model": ref.registered_name,
        "champion": int(champion.version),
        "drift": [d.to_dict() for d in drift],
        "drift_passed": drift_passed(drift, spec),
        "weekly": weekly.assign(week=weekly.week.astype(str)).to_dict(orient="records"),
        "performance": verdict,
    }
