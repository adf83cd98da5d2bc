"""The CSV reader types numbers, booleans and text itself (the fast path); a value it refuses sends the load back to
reading as text, so that the quarantine and a refusal say what they always say."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import duckdb
import pytest

from foundation.engine.connectors.landing_sql import READER_TYPES

# Values a CSV can hold for each type, the odd ones above all (spaces, signs, exponents, overflow, words).
ODD_VALUES = {
    "DOUBLE": [" 1.5", "1.5 ", "1e3", "inf", "-inf", "NaN", "+1", "1_000", "0x10", "1,5", ".5", "5.", "1e400", "-0",
               "Infinity", "abc", "1.0e-5", "1d", "2"],
    "INTEGER": ["1.5", "1.4", " 7", "7 ", "1e2", "+3", "0x1F", "1_000", "2147483648", "-2147483648", "007", "1.0",
                "-0", "1,000", "x"],
    "BIGINT": ["1.5", "9223372036854775808", "1e2", "1_000", "0x1F", " 5", "-9223372036854775808"],
    "SMALLINT": ["32768", "-32768", "1.5", " 3", "1e1"],
    "BOOLEAN": ["true", "false", "T", "F", "yes", "no", "1", "0", "y", "n", "TRUE", "on", "off", "maybe"],
    "VARCHAR": ["x", " y ", "é"],
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(READER_TYPES))
def test_a_value_the_reader_accepts_is_the_value_try_cast_gives(tmp_path: Path, kind: str) -> None:
    """What makes the fast path safe: the reader never lands a value the text path would flag, nor another value."""
    path = tmp_path / "values.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["i", "v"])
        writer.writerows(enumerate(ODD_VALUES[kind]))
    con = duckdb.connect()

    def read(as_type: str) -> str:
        return f"read_csv('{path}', header=true, store_rejects=true, types={{'i': 'INTEGER', 'v': '{as_type}'}})"

    typed = dict(con.execute(f"SELECT i, v FROM {read(kind)}").fetchall())
    # `v` selected too: a query using the raw column only through TRY_CAST has DuckDB push the cast into the reader
    text = con.execute(f"SELECT i, TRY_CAST(v AS {kind}), v FROM {read('VARCHAR')}").fetchall()
    cast = {i: value for i, value, _ in text}
    accepted = 0
    for i, text in enumerate(ODD_VALUES[kind]):
        if i not in typed:
            continue  # refused by the reader: the load reads the file again as text
        accepted += 1
        same = typed[i] == cast[i] or (isinstance(typed[i], float) and math.isnan(typed[i]) and math.isnan(cast[i]))
        assert same, f"{kind} {text!r}: the reader gives {typed[i]!r}, TRY_CAST {cast[i]!r}"
    assert accepted >= 2  # the comparison compared something


CLEAN_CSV = "id,temp,ok,note\n1,20.5,true,a\n2,21.0,false,b\n3,,true,\n"
COLUMNS = [
    {"name": "id", "type": "integer", "required": True},
    {"name": "temp", "type": "double"},
    {"name": "ok", "type": "boolean"},
]


def test_a_clean_file_is_typed_by_the_reader(make_workspace, spec) -> None:
    kit = make_workspace(
        sources=[spec("clean", {"type": "csv", "path": "landing/clean.csv"}, columns=COLUMNS)],
        files={"landing/clean.csv": CLEAN_CSV},
    )
    report = kit.ingest("clean")
    assert "csv_read_again_as_text" not in report.notes
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (3, 3, 0)
    rows = [(r["id"], r["temp"], r["ok"], r["note"]) for r in kit.rows("clean", order_by="id")]
    assert rows == [(1, 20.5, True, "a"), (2, 21.0, False, "b"), (3, None, True, None)]


def test_a_value_the_reader_refuses_is_flagged_as_the_text_path_flags_it(make_workspace, spec) -> None:
    kit = make_workspace(
        sources=[spec("odd", {"type": "csv", "path": "landing/odd.csv"}, columns=COLUMNS)],
        files={"landing/odd.csv": CLEAN_CSV + "4,warm,true,c\n5,22.0,maybe,d\n"},
    )
    report = kit.ingest("odd")
    assert report.notes["csv_read_again_as_text"]
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (5, 3, 2)
    assert report.reconciles
    reasons = sorted((q["_rule"], q["_invalid_reason"]) for q in kit.quarantine("odd"))
    assert reasons == [("type", "ok: cannot read 'maybe' as boolean"), ("type", "temp: cannot read 'warm' as double")]
    assert [r["id"] for r in kit.rows("odd", order_by="id")] == [1, 2, 3]
    assert kit.ingest("odd").status == "nothing_new"  # one commit, the state with it: no row twice
