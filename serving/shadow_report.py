"""Champion against challenger on the same requests, from the shadow table (serving.shadow): what the use-case
dashboard shows under a model that has (or had) a challenger.

Per (champion version, challenger version): the predictions compared, the requests, how often the two agree, how
many each flags (a classifier's `true`), their mean scores, and the period; and, once outcomes arrive in the
feature table, both sides' precision and recall on the shadowed requests that carry their entity and time.
Read afresh per page view with DuckDB over the Delta tables; None when the model was never shadowed.
"""

from __future__ import annotations

from typing import Any

import duckdb
from deltalake import DeltaTable

from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.sql import quote_ident, quote_literal
from mlops.dataset import feature_table_uri
from serving.shadow import shadow_uri

COMPARISON_SQL = """
    select champion_version, challenger_version,
           count(*) as predictions,
           count(distinct request_id) as requests,
           avg(case when champion_prediction = challenger_prediction then 1.0 else 0.0 end) as agreement,
           count(*) filter (where champion_prediction = 'true') as champion_flagged,
           count(*) filter (where challenger_prediction = 'true') as challenger_flagged,
           avg(champion_score) as champion_score,
           avg(challenger_score) as challenger_score,
           min(predicted_at) as first_at,
           max(predicted_at) as last_at
    from {table}
    group by all
    order by last_at desc
"""


def challenger_comparison(workspace: Workspace, model: str) -> list[dict[str, Any]] | None:
    """The comparison rows of `model` (newest pair first), or None when it has no shadow table."""
    uri = shadow_uri(workspace, model)
    storage = workspace.settings.lakehouse.storage_options or None
    if not DeltaTable.is_deltatable(uri, storage_options=storage):
        return None
    con = duckdb.connect()
    try:
        cursor = con.execute(COMPARISON_SQL.format(table=delta_relation_sql(con, uri, storage_options=storage)))
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def outcome_sql(table: str, features: str, entity: list[str], time: str, target: str, row_filter: str | None) -> str:
    """Pure: champion and challenger against the known outcomes, for the shadowed requests whose inputs carry the
    entity and time (predict-by-key's do), joined with the feature table's rows whose outcome is known."""
    keys = [
        f"cast(f.{quote_ident(c)} as varchar) = json_extract_string(s.inputs, {quote_literal('$.' + c)})"
        for c in entity
    ]
    keys.append(
        f"cast(f.{quote_ident(time)} as timestamp) = "
        f"try_cast(json_extract_string(s.inputs, {quote_literal('$.' + time)}) as timestamp)"
    )
    known = f"and ({row_filter})" if row_filter else ""
    outcome = f"f.{quote_ident(target)}"

    def counts(who: str) -> str:
        said = f"s.{who}_prediction = 'true'"
        return (
            f"count(*) filter (where {said} and {outcome}) as {who}_tp, "
            f"count(*) filter (where {said} and not {outcome}) as {who}_fp, "
            f"count(*) filter (where not {said} and {outcome}) as {who}_fn"
        )

    return f"""
        select s.champion_version, s.challenger_version, count(*) as with_outcome,
               count(*) filter (where {outcome}) as positives, {counts("champion")}, {counts("challenger")}
        from {table} s join {features} f on {" and ".join(keys)}
        where {outcome} is not null {known}
        group by all
        order by s.challenger_version desc
    """


def rates(row: dict[str, Any], who: str) -> dict[str, float | None]:
    """Pure: precision and recall of one side from its counts (None where undefined)."""
    tp, fp, fn = row[f"{who}_tp"], row[f"{who}_fp"], row[f"{who}_fn"]
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def against_outcomes(workspace: Workspace, model: str, usecase: str, spec: Any) -> list[dict[str, Any]] | None:
    """Per (champion, challenger) pair, both sides' precision and recall on the shadowed requests whose outcome is
    now known; None without a shadow table or a feature table. Requests that carry no entity and time (plain
    /predict) cannot be matched to an outcome and are not counted."""
    uri = shadow_uri(workspace, model)
    features_uri = feature_table_uri(workspace, usecase, spec)
    storage = workspace.settings.lakehouse.storage_options or None
    if not DeltaTable.is_deltatable(uri, storage_options=storage):
        return None
    if not DeltaTable.is_deltatable(features_uri, storage_options=storage):
        return None
    con = duckdb.connect()
    try:
        sql = outcome_sql(
            delta_relation_sql(con, uri, storage_options=storage),
            delta_relation_sql(con, features_uri, storage_options=storage),
            list(spec.entity),
            spec.time,
            spec.target,
            spec.row_filter,
        )
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()
    return [{**row, "champion": rates(row, "champion"), "challenger": rates(row, "challenger")} for row in rows]
