"""MLflow's scoring protocol, parsed: the four body formats of `mlflow models serve` -> rows keyed by column.

Pure functions; a malformed body raises InvalidInput (422) naming the key and the expected shape."""

from __future__ import annotations

from typing import Any

from serving.errors import InvalidInput

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _invalid(field: str, message: str, kind: str = "value_error") -> InvalidInput:
    return InvalidInput([{"field": field, "message": message, "type": kind}])


def records_of(payload: dict[str, Any]) -> tuple[str, Any]:
    """(the format used, its rows as a list of {column: value}); 422 naming the problem otherwise."""
    used = [k for k in FORMATS if k in payload]
    extra = sorted(k for k in payload if k not in FORMATS and k != "params")
    if extra:
        raise InvalidInput(
            [
                {"field": k, "message": f"unknown key; use one of {', '.join(FORMATS)}", "type": "extra_forbidden"}
                for k in extra
            ]
        )
    if len(used) != 1:
        raise _invalid("body", f"send exactly one of {', '.join(FORMATS)} (got {', '.join(used) or 'none'})")
    key = used[0]
    value = payload[key]
    if key == "dataframe_split":
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("columns"), list)
            or not isinstance(value.get("data"), list)
        ):
            raise _invalid(key, 'expected {"columns": [...], "data": [[...], ...]}')
        columns = value["columns"]
        rows = []
        for i, row in enumerate(value["data"]):
            if not isinstance(row, list) or len(row) != len(columns):
                raise _invalid(f"{key}.data[{i}]", f"expected a list of {len(columns)} values (one per column)")
            rows.append(dict(zip(columns, row, strict=True)))
        return key, rows
    if key == "inputs" and isinstance(value, dict):  # columnar: {column: [values]}
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise _invalid(key, "columnar inputs must map each column to a list of values of the same length")
        n = lengths.pop()
        return key, [{c: v[i] for c, v in value.items()} for i in range(n)]
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise _invalid(key, "expected a list of rows, each an object {column: value}")
    return key, value
