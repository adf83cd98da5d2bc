"""Champion against challenger on the same requests, from the shadow table (serving.shadow): what the use-case
dashboard shows under a model that has (or had) a challenger.

Per (champion version, challenger version): the predictions compared, the requests, how often the two agree, how
many each flags (a classifier's `true`), their mean scores, and the period. Read afresh per page view with DuckDB
over the Delta table; None when the model was never shadowed.
"""

from __future__ import annotations

from typing import Any

import duckdb
from deltalake import DeltaTable

from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.catalog import delta_relation_sql
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
