"""The pure parts of score-by-key: the keys' types, the index rows, the query of the batch predictions."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest
from pydantic import ValidationError

from serving.errors import InvalidInput
from serving.key_scoring import query_filters
from serving.lookup import KeyedModel, index_rows, key_part, key_type, keys_model

KEYED = KeyedModel("uc__m", "uc/features", ["depot", "unit"], "day", "mem://f", "mem://p")


def test_keys_are_typed_from_the_table_and_strict() -> None:
    request = keys_model("uc__m", {"depot": key_type(pa.string()), "unit": key_type(pa.int64())}, max_keys=2)
    ok = request.model_validate({"keys": [{"depot": "north", "unit": 7}]})
    assert ok.model_dump(by_alias=True) == {"keys": [{"depot": "north", "unit": 7}]}
    for bad in ({"depot": 7, "unit": 7}, {"depot": "north", "unit": "7"}, {"depot": "north"}, {"unit": True}):
        with pytest.raises(ValidationError):
            request.model_validate({"keys": [bad]})
    with pytest.raises(ValidationError):  # more keys than api.max_batch_size
        request.model_validate({"keys": [{"depot": "n", "unit": 1}] * 3})
    assert keys_model("d", {"day": key_type(pa.date32())}, 5).model_validate({"keys": [{"day": "2026-01-02"}]})


def test_index_rows_key_by_entity_values_with_json_values() -> None:
    rows = pa.table(
        {
            "depot": ["north", "south"],
            "unit": [7, 8],
            "day": [date(2026, 1, 2), date(2026, 1, 3)],
            "temp": [pa.scalar(1, pa.int64()).as_py(), None],
            "kind": ["van", None],
        }
    )
    index = index_rows(rows, KEYED, ["temp", "kind"], reals={"temp"})
    assert index[("north", 7)] == ("2026-01-02", {"temp": 1.0, "kind": "van"})
    assert index[("south", 8)] == ("2026-01-03", {"temp": None, "kind": None})
    assert key_part(datetime(2026, 1, 2, 3)) == "2026-01-02 03:00:00" and key_part(date(2026, 1, 2)) == date(2026, 1, 2)


def test_the_query_is_typed_by_the_predictions_columns() -> None:
    schema = pa.schema([("depot", pa.string()), ("unit", pa.int64()), ("day", pa.date32())])
    assert query_filters(KEYED, schema, [("unit", "7"), ("limit", "5")]) == ({"unit": 7}, 5)
    assert query_filters(KEYED, schema, []) == ({}, 100)
    with pytest.raises(InvalidInput) as refused:
        query_filters(KEYED, schema, [("unit", "seven"), ("limit", "0"), ("colour", "red")])
    assert [item["field"] for item in refused.value.items] == ["query.unit", "query.limit", "query.colour"]


def test_a_batch_row_of_a_classifier_and_of_a_regression() -> None:
    from serving.key_scoring import batch_item

    row = {"prediction_id": "p1", "depot": "n", "unit": 7, "day": date(2026, 1, 2), "model_version": 3}
    row |= {"scored_at": datetime(2026, 1, 3), "score": 0.8, "label": True, "threshold": 0.5}
    item = batch_item(KEYED, row)
    assert item["key"] == {"depot": "n", "unit": 7} and item["as_of"] == "2026-01-02"
    assert (item["prediction"], item["threshold"]) == (True, 0.5)
    regression = batch_item(KEYED, {**row, "score": 41.5, "label": None, "threshold": None})
    assert (regression["prediction"], regression["score"], regression["threshold"]) == (41.5, 41.5, None)
