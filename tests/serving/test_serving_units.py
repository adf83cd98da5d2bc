"""Pure parts of the API: key parsing and matching, request schemas from a signature, error field paths."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving.deps import Principal, key_id, match_key, parse_api_keys
from serving.errors import InvalidInput, field_path
from serving.schemas import ColumnSpec, batch_model, row_model

COLUMNS = [
    ColumnSpec("truck_type", "string", True),
    ColumnSpec("Air temperature [K]", "double", True),
    ColumnSpec("cycles", "long", False),
]


def test_keys_parse_plain_and_scoped_entries() -> None:
    keys = parse_api_keys(" alpha , beta:uc__a+uc__b ,, ")
    assert [k.secret for k in keys] == [b"alpha", b"beta"]
    assert keys[0].models is None
    assert keys[1].models == frozenset({"uc__a", "uc__b"})
    assert keys[1].key_id == key_id("beta") != key_id("alpha")
    assert "beta" not in keys[1].key_id


@pytest.mark.parametrize("text", [":uc__a", "gamma:", "gamma: + "])
def test_malformed_key_entries_are_refused_without_echoing_the_key(text: str) -> None:
    with pytest.raises(ValueError, match="entry 1") as info:
        parse_api_keys(text)
    assert "gamma" not in str(info.value)


def test_match_key_finds_only_an_exact_key() -> None:
    keys = parse_api_keys("alpha,beta:m")
    assert match_key(keys, "beta") is keys[1]
    assert match_key(keys, "alph") is None
    assert match_key(keys, "alphaa") is None
    assert match_key([], "alpha") is None


def test_principal_scope() -> None:
    assert Principal("k", None).may_use("any")
    limited = Principal("k", frozenset({"a"}))
    assert limited.may_use("a") and not limited.may_use("b")


def test_row_model_types_required_fields_and_unknown_fields() -> None:
    row = row_model("uc__m", COLUMNS)
    ok = row.model_validate({"truck_type": "van", "Air temperature [K]": 300})
    assert ok.model_dump(by_alias=True) == {"truck_type": "van", "Air temperature [K]": 300.0, "cycles": None}
    with pytest.raises(ValidationError) as info:
        row.model_validate({"Air temperature [K]": "hot", "cycles": 1.5, "colour": "red"})
    problems = {(e["loc"][0], e["type"]) for e in info.value.errors()}
    assert problems == {
        ("truck_type", "missing"),
        ("Air temperature [K]", "float_parsing"),
        ("cycles", "int_from_float"),
        ("colour", "extra_forbidden"),
    }


def test_batch_model_bounds_and_field_paths_in_errors() -> None:
    request = batch_model("uc__m", row_model("uc__m", COLUMNS), max_batch_size=2)
    good = {"truck_type": "van", "Air temperature [K]": 1.0}
    assert len(request.model_validate({"instances": [good, good]}).instances) == 2
    for instances, kind in (([], "too_short"), ([good] * 3, "too_long")):
        with pytest.raises(ValidationError) as info:
            request.model_validate({"instances": instances})
        assert info.value.errors()[0]["type"] == kind
    with pytest.raises(ValidationError) as info:
        request.model_validate({"instances": [good, {**good, "truck_type": 3}]})
    items = InvalidInput.from_validation(info.value).items
    expected = {"field": "instances[1].truck_type", "message": "Input should be a valid string", "type": "string_type"}
    assert items == [expected]


def test_field_path() -> None:
    assert field_path(("body", "instances", 0, "temp")) == "instances[0].temp"
    assert field_path(("query", "q")) == "query.q"
    assert field_path(()) == "body"
