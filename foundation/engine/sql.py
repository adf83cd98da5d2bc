"""SQL text helpers: quoting and the naming convention for columns that arrive with raw names."""

from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^0-9a-zA-Z]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def quote_ident(name: str) -> str:
    """A DuckDB identifier, quoted so that any raw name (spaces, brackets, quotes) is safe."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def snake_case(raw: str) -> str:
    """The column name a raw name gets when the YAML does not rename it: `Air temperature [K]` -> `air_temperature_k`.

    Same idea as dlt's snake_case naming convention: lower case, runs of other characters become `_`.
    """
    name = _NON_ALNUM.sub("_", _CAMEL.sub("_", raw.strip())).strip("_").lower()
    if not name:
        name = "column"
    if name[0].isdigit():
        name = f"c_{name}"
    return name[:63]
