"""Realised performance leaves out the rows the scoring model version was trained on."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from foundation.specs.model import ModelSpec
from mlops.monitoring import realised_sql
from tests.mlops.conftest import spec_dict


def test_rows_up_to_the_versions_train_end_are_not_judged() -> None:
    spec = ModelSpec.model_validate(spec_dict())
    days = [date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 19)]
    predictions = pd.DataFrame(
        {
            "truck_id": ["T1", "T1", "T1", "T2"],
            "date_day": [*days, days[2]],
            "model_version": [1, 1, 1, 2],
            "label": [True, True, True, True],
        }
    )
    features = pd.DataFrame(
        {
            "truck_id": ["T1", "T1", "T1", "T2"],
            "date_day": [*days, days[2]],
            "failure_soon": [True, False, True, False],
            "label_complete": [True, True, True, True],
        }
    )
    con = duckdb.connect()
    con.register("p_rows", predictions)
    con.register("f_rows", features)

    def weeks(train_ends: dict[int, str] | None) -> dict[str, tuple[int, int]]:
        rows = con.execute(realised_sql("p_rows", "f_rows", spec, True, train_ends)).df()
        return {str(r.week.date()): (int(r.tp), int(r.fp)) for r in rows.itertuples()}

    everything = {"2026-01-05": (1, 0), "2026-01-12": (0, 1), "2026-01-19": (1, 1)}
    assert weeks(None) == everything
    # v1 trained up to 2026-01-12: its first two weeks are in-sample; v2 trained up to the 19th; v3 unknown.
    assert weeks({1: "2026-01-12", 2: "2026-01-19 00:00:00"}) == {"2026-01-19": (1, 0)}
    assert weeks({3: "2026-01-19"}) == everything  # a version without a train_end keeps its rows
