"""`line_numbers: true`: `_line` is the physical line each record starts on in its file, in bronze and in the
quarantine alike; rejected lines, the header and skipped lines are counted; a file whose lines are not one record
each is refused, not numbered wrongly."""

from __future__ import annotations

import pytest

from foundation.engine.ingest.line_numbers import LineNumbersError

# One value per line, for unit 1, 2, 3 ...: line 4 is ragged (a parse reject), line 6 does not type (a flagged row).
HEADERLESS = "10\n20\n30\n40;x\n50\nbad\n70\n"
HEADERLESS_EXTRACT = {"type": "csv", "path": "landing/units/*.csv", "header": False, "delimiter": ";",
                      "column_names": ["value"]}  # fmt: skip
VALUE = [{"name": "value", "type": "integer"}]


def _landed(kit, name: str) -> list[tuple[str, int, object]]:
    rows = kit.rows(name, order_by="_source_file, _line")
    return [(r["_source_file"].rsplit("/", 1)[-1], r["_line"], r["value"]) for r in rows]


def _quarantined(kit, name: str) -> list[tuple[str, int, str]]:
    return [(r["_source_file"].rsplit("/", 1)[-1], r["_source_line"], r["_rule"]) for r in kit.quarantine(name)]


def test_a_headerless_files_lines_in_bronze_and_quarantine(make_workspace, spec) -> None:
    kit = make_workspace(
        sources=[spec("units", HEADERLESS_EXTRACT, columns=VALUE, line_numbers=True)],
        files={"landing/units/a.csv": HEADERLESS},
        settings={"ingest": {"batch_rows": 2}},  # the count carries across batches
    )
    report = kit.ingest("units")
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (7, 5, 2)
    assert _landed(kit, "units") == [("a.csv", 1, 10), ("a.csv", 2, 20), ("a.csv", 3, 30), ("a.csv", 5, 50),
                                     ("a.csv", 7, 70)]  # fmt: skip
    assert _quarantined(kit, "units") == [("a.csv", 4, "parse"), ("a.csv", 6, "type")]


def test_two_files_with_a_header_and_skipped_lines(make_workspace, spec) -> None:
    extract = {"type": "csv", "path": "landing/units/*.csv", "skip_rows": 1, "delimiter": ","}
    kit = make_workspace(
        sources=[spec("units", extract, columns=VALUE, line_numbers=True)],
        files={
            "landing/units/a.csv": "exported by X\nvalue\n1\n2,3\n4\n",
            "landing/units/b.csv": "exported by X\nvalue\n5\n6\n",
        },
        settings={"ingest": {"batch_rows": 3}},
    )
    report = kit.ingest("units")
    assert report.rows_read == report.rows_landed + report.rows_quarantined == 5
    assert _landed(kit, "units") == [("a.csv", 3, 1), ("a.csv", 5, 4), ("b.csv", 3, 5), ("b.csv", 4, 6)]
    assert _quarantined(kit, "units") == [("a.csv", 4, "parse")]


def test_without_the_option_no_line_column(make_workspace, spec) -> None:
    kit = make_workspace(
        sources=[spec("units", HEADERLESS_EXTRACT, columns=VALUE)], files={"landing/units/a.csv": "1\n2\n"}
    )
    kit.ingest("units")
    assert "_line" not in kit.rows("units")[0]


@pytest.mark.parametrize(
    "content", ['value,note\n1,"two\nlines"\n3,x\n', "value,note\n1,a\n\n3,b\n"], ids=["quoted-break", "blank-line"]
)
def test_a_file_whose_lines_are_not_records_is_refused(make_workspace, spec, content) -> None:
    kit = make_workspace(
        sources=[spec("units", {"type": "csv", "path": "landing/units.csv"}, columns=VALUE, line_numbers=True)],
        files={"landing/units.csv": content},
    )
    with pytest.raises(LineNumbersError, match=r"units\.csv: line_numbers: the file has 4 lines but 2 records"):
        kit.ingest("units")
    assert kit.version("units") is None  # nothing landed


def test_line_numbers_need_a_csv_append_or_replace_load(make_workspace, spec) -> None:
    kit = make_workspace(
        sources=[spec("units", HEADERLESS_EXTRACT, columns=VALUE, line_numbers=True,
                      load={"mode": "merge", "primary_key": ["value"]})],
        files={"landing/units/a.csv": "1\n"},
    )  # fmt: skip
    scan = kit.open().scan
    assert any("line_numbers: true needs a csv extract" in error.format() for error in scan.errors)


def test_a_row_rules_quarantined_row_keeps_its_line(make_workspace, spec) -> None:
    columns = [{"name": "value", "type": "integer", "checks": [{"between": [0, 60]}]}]
    kit = make_workspace(
        sources=[spec("units", HEADERLESS_EXTRACT, columns=columns, line_numbers=True)],
        files={"landing/units/a.csv": HEADERLESS},
    )
    report = kit.ingest("units")
    assert report.rows_read == report.rows_landed + report.rows_quarantined == 7
    assert [line for _, line, _ in _landed(kit, "units")] == [1, 2, 3, 5]
    assert [(line, rule) for _, line, rule in _quarantined(kit, "units")] == [
        (4, "parse"), (6, "type"), (7, "value__between")]  # fmt: skip
