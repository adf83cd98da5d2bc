"""`undeclared_columns: drop`: a file's columns that the YAML does not declare are left out, such as the empty
column a trailing delimiter makes on every line of a headerless file."""

from __future__ import annotations

# One value per line and a trailing delimiter: DuckDB reads a third, empty column.
TRAILING = "1;20.5;\n2;21.0;\n3;;\n"
EXTRACT = {"type": "csv", "path": "landing/units.csv", "header": False, "delimiter": ";",
           "column_names": ["unit", "temp"]}  # fmt: skip
COLUMNS = [{"name": "unit", "type": "integer"}, {"name": "temp", "type": "double"}]


def _landed_columns(kit) -> list[str]:
    return [c for c in kit.rows("units", order_by="unit")[0] if not c.startswith("_")]


def test_a_trailing_delimiters_column_lands_unless_dropped(make_workspace, spec) -> None:
    kept = make_workspace(sources=[spec("units", EXTRACT, columns=COLUMNS)], files={"landing/units.csv": TRAILING})
    assert kept.ingest("units").rows_landed == 3
    assert len(_landed_columns(kept)) == 3  # the empty one too, as before


def test_undeclared_columns_drop_lands_the_declared_ones_only(make_workspace, spec) -> None:
    kit = make_workspace(
        sources=[spec("units", EXTRACT, columns=COLUMNS, undeclared_columns="drop")],
        files={"landing/units.csv": TRAILING},
    )
    report = kit.ingest("units")
    assert (report.rows_read, report.rows_landed) == (3, 3)
    assert _landed_columns(kit) == ["unit", "temp"]
    assert [(r["unit"], r["temp"]) for r in kit.rows("units", order_by="unit")] == [(1, 20.5), (2, 21.0), (3, None)]


def test_dropping_undeclared_columns_needs_declared_ones(make_workspace, spec) -> None:
    kit = make_workspace(
        sources=[spec("units", EXTRACT, undeclared_columns="drop")], files={"landing/units.csv": "1\n"}
    )
    scan = kit.open().scan
    assert not scan.ok
    assert any("undeclared_columns: drop needs" in error.format() for error in scan.errors)
