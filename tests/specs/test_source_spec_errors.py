"""`foundation check` errors for source YAML: each names the file, the right line, the field and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.specs.errors import SpecError, SpecValidationError

# Lines 1-7 of every spec below; tests append the lines they exercise, so line numbers are known.
BASE = """\
name: sensors
description: Sensor readings of the test rig
owner: data-team@example.com
schedule: "0 * * * *"
extract:
  type: csv
  path: landing/sensors/*.csv
"""


def scan_errors(make_workspace, text: str, name: str = "sensors") -> tuple[Path, list[SpecError]]:
    kit = make_workspace()
    path = kit.write_source(text, name=name)
    return path, [e for e in kit.open().scan.errors if e.path == path]


def only_error(make_workspace, text: str) -> SpecError:
    _, errors = scan_errors(make_workspace, text)
    assert len(errors) == 1, [e.format() for e in errors]
    return errors[0]


def test_base_spec_is_valid(make_workspace):
    kit = make_workspace()
    kit.write_source(BASE, name="sensors")
    scan = kit.open().scan
    assert [e for e in scan.errors if e.path.name == "sensors.yaml"] == []
    (source,) = scan.sources
    assert (source.usecase, source.name, source.spec.extract.paths) == ("uc", "sensors", ["landing/sensors/*.csv"])


def test_error_format_is_file_line_field_message_hint(make_workspace):
    kit = make_workspace()
    kit.write_source(BASE + "ownr: someone@example.com\n", name="sensors")
    (error,) = [e for e in kit.open().scan.errors if e.path.name == "sensors.yaml"]
    assert error.format(relative_to=kit.root) == (
        "usecases/uc/sources/sensors.yaml:8: ownr: unknown key 'ownr' (hint: did you mean 'owner'?)"
    )
    assert error.to_dict()["line"] == 8


def test_yaml_syntax_error_shows_its_line(make_workspace):
    text = BASE + "columns:\n  - name: a\n    type: [integer\n  - name: b\n"
    error = only_error(make_workspace, text)
    assert error.line == 11  # where the parser noticed the unclosed flow sequence...
    assert error.message == (  # ...and where it was opened
        "YAML syntax error: expected ',' or ']', but got ':' (while parsing a flow sequence started on line 10)"
    )
    assert "indentation" in error.hint


def test_yaml_unclosed_quote_names_the_line_it_opened_on(make_workspace):
    text = BASE + 'tags: ["sensors]\ncolumns: []\n'
    error = only_error(make_workspace, text)
    assert "while scanning a quoted scalar started on line 8" in error.message


def test_yaml_syntax_error_on_bad_indentation(make_workspace):
    text = "name: sensors\ndescription: Sensor readings\n  owner: data-team@example.com\n"
    error = only_error(make_workspace, text)
    assert error.message == "YAML syntax error: mapping values are not allowed here"
    assert error.line == 3


def test_a_list_instead_of_a_mapping_is_reported(make_workspace):
    error = only_error(make_workspace, "- name: sensors\n")
    assert (error.line, error.message) == (1, "expected a mapping of keys, found list")


@pytest.mark.parametrize(
    ("extra", "line", "field", "hint"),
    [
        ("ownr: data-team@example.com\n", 8, "ownr", "did you mean 'owner'?"),
        ("  delimeter: ';'\n", 8, "extract.delimeter", "did you mean 'delimiter'?"),
        ("  hedaer: false\n", 8, "extract.hedaer", "did you mean 'header'?"),
        (
            "columns:\n  - name: a\n    type: integer\n  - name: b\n    tpye: integer\n",
            12,
            "columns[1].tpye",
            "did you mean 'type'?",
        ),
        (
            "columns:\n  - name: temp\n    frm: Temp [C]\n",
            10,
            "columns[0].frm",
            "did you mean 'from'?",
        ),
        (
            "load:\n  mode: append\n  incremental:\n    cursr: ts\n",
            11,
            "load.incremental.cursr",
            "did you mean 'cursor'?",
        ),
    ],
    ids=["top-level", "extract", "extract-header", "column", "column-from-alias", "incremental"],
)
def test_unknown_key_hints_the_closest_valid_key(make_workspace, extra, line, field, hint):
    error = only_error(make_workspace, BASE + extra)
    key = field.rsplit(".", 1)[-1]
    assert (error.line, error.field, error.message, error.hint) == (line, field, f"unknown key {key!r}", hint)


def test_unknown_key_far_from_any_lists_the_valid_keys(make_workspace):
    text = BASE.replace("  type: csv\n", "  type: parquet\n") + "  zzz: 1\n"
    error = only_error(make_workspace, text)
    assert (error.line, error.field) == (8, "extract.zzz")
    assert error.hint == "valid keys here: path, type"


@pytest.mark.parametrize("missing", ["owner", "description"])
def test_missing_mandatory_metadata(make_workspace, missing):
    text = "".join(line for line in BASE.splitlines(keepends=True) if not line.startswith(f"{missing}:"))
    error = only_error(make_workspace, text)
    assert error.field == missing
    assert error.message == "required field is missing"
    assert f"add `{missing}:`" in error.hint


def test_missing_owner_and_description_are_both_reported(make_workspace):
    text = "name: sensors\nschedule: manual\nextract: {type: csv, path: a.csv}\n"
    _, errors = scan_errors(make_workspace, text)
    assert sorted((e.field, e.message) for e in errors) == [
        ("description", "required field is missing"),
        ("owner", "required field is missing"),
    ]


def test_owner_must_be_an_email(make_workspace):
    error = only_error(make_workspace, BASE.replace("owner: data-team@example.com", "owner: the data team"))
    assert (error.line, error.field) == (3, "owner")
    assert "not an e-mail address" in error.message


@pytest.mark.parametrize(
    ("extra", "line", "field", "message"),
    [
        ("  header: maybe\n", 8, "extract.header", "valid boolean"),
        ("max_invalid_percent: lots\n", 8, "max_invalid_percent", "valid number"),
        ("max_invalid_percent: 150\n", 8, "max_invalid_percent", "less than or equal to 100"),
        ("  skip_rows: -1\n", 8, "extract.skip_rows", "greater than or equal to 0"),
        ("columns:\n  - name: a\n    type: integr\n", 10, "columns[0].type", "unknown column type 'integr'"),
        ("columns:\n  - name: a\n    required: sometimes\n", 10, "columns[0].required", "valid boolean"),
    ],
)
def test_wrong_value_types(make_workspace, extra, line, field, message):
    error = only_error(make_workspace, BASE + extra)
    assert (error.line, error.field) == (line, field)
    assert message in error.message


def test_path_of_the_wrong_type_is_one_clear_error(make_workspace):
    error = only_error(make_workspace, BASE.replace("  path: landing/sensors/*.csv", "  path: 5"))
    assert (error.line, error.field, error.message) == (7, "extract.path", "expected a string or a list, found int")


def test_literal_values_get_a_did_you_mean(make_workspace):
    error = only_error(make_workspace, BASE + "on_invalid_rows: quarantain\n")
    assert (error.line, error.field) == (8, "on_invalid_rows")
    assert error.message.startswith("'quarantain' is not allowed")
    assert error.hint == "did you mean 'quarantine'?"


@pytest.mark.parametrize("schedule", ["61 * * * *", "* * * *", "every hour", "@minutely", "0 0 31 2 * *"])
def test_invalid_cron_is_rejected(make_workspace, schedule):
    error = only_error(make_workspace, BASE.replace('schedule: "0 * * * *"', f'schedule: "{schedule}"'))
    assert (error.line, error.field) == (4, "schedule")
    assert "not a 5-field cron expression" in error.message


@pytest.mark.parametrize("schedule", ["0 6 * * 1-5", "*/15 * * * *", "@daily", "manual"])
def test_valid_schedules_are_accepted(make_workspace, schedule):
    _, errors = scan_errors(make_workspace, BASE.replace('schedule: "0 * * * *"', f'schedule: "{schedule}"'))
    assert errors == []


@pytest.mark.parametrize("name", ["../etc", "a;drop table", "Name With Space", 'sensors"', "1st", "x" * 64])
def test_source_name_that_could_escape_an_identifier_or_path_is_rejected(make_workspace, name):
    text = BASE.replace("name: sensors", f"name: '{name}'")
    error = only_error(make_workspace, text)
    assert (error.line, error.field) == (1, "name")
    assert "is not a valid name" in error.message
    assert "lower_snake_case" in error.message


@pytest.mark.parametrize("name", ["../etc", "a;drop table", "Name With Space", 'a"b'])
def test_column_name_that_could_escape_an_identifier_is_rejected(make_workspace, name):
    text = BASE + f"columns:\n  - name: ok_column\n  - name: '{name}'\n"
    error = only_error(make_workspace, text)
    assert (error.line, error.field) == (10, "columns[1].name")
    assert "is not a valid name" in error.message


@pytest.mark.parametrize("path", ["../../etc/*.csv", "landing/../../etc/passwd", "..\\..\\etc\\*.csv"])
def test_path_climbing_out_of_the_workspace_is_rejected(make_workspace, path):
    text = BASE.replace("  path: landing/sensors/*.csv", f"  path: '{path}'")
    error = only_error(make_workspace, text)
    assert (error.line, error.field) == (7, "extract.path")
    assert "climbs out of the workspace" in error.message


def test_path_climbing_out_inside_a_list_points_at_the_item(make_workspace):
    text = BASE.replace("  path: landing/sensors/*.csv", "  path:\n    - landing/a/*.csv\n    - ../b/*.csv")
    error = only_error(make_workspace, text)
    assert (error.line, error.field) == (9, "extract.path[1]")
    assert "'../b/*.csv' climbs out" in error.message


def test_absolute_and_nested_paths_are_accepted(make_workspace):
    text = BASE.replace("  path: landing/sensors/*.csv", "  path: [/data/in/*.csv, landing/**/x..y.csv]")
    _, errors = scan_errors(make_workspace, text)
    assert errors == []


def test_duplicate_keys_are_reported_at_the_second_one(make_workspace):
    text = BASE + "owner: other@example.com\n"
    error = only_error(make_workspace, text)
    assert (error.line, error.field, error.message) == (8, "owner", "duplicate key")


def test_nested_duplicate_keys_are_reported(make_workspace):
    text = BASE + "  path: landing/other/*.csv\ncolumns:\n  - {name: a, type: integer, type: double}\n"
    _, errors = scan_errors(make_workspace, text)
    assert sorted((e.line, e.field, e.message) for e in errors) == [
        (8, "extract.path", "duplicate key"),
        (10, "columns[0].type", "duplicate key"),
    ]


def test_merge_without_primary_key(make_workspace):
    error = only_error(make_workspace, BASE + "load:\n  mode: merge\n")
    assert (error.line, error.field) == (8, "load")
    assert "primary_key" in error.message


def test_load_keys_must_be_declared_columns(make_workspace):
    text = BASE + "load: {mode: merge, primary_key: [id]}\ncolumns:\n  - name: value\n"
    error = only_error(make_workspace, text)
    assert "undeclared columns: id" in error.message


def test_replace_cannot_be_incremental(make_workspace):
    error = only_error(make_workspace, BASE + "load:\n  mode: replace\n  incremental: {cursor: ts}\n")
    assert (error.line, error.field) == (8, "load")
    assert "mode: replace reloads everything" in error.message


def test_incremental_needs_a_strategy(make_workspace):
    error = only_error(make_workspace, BASE + "load:\n  mode: append\n  incremental: {}\n")
    assert (error.line, error.field) == (10, "load.incremental")
    assert "cursor" in error.message


@pytest.mark.parametrize("column", ["customer_email", "phone", "first_name", "street_address", "iban"])
def test_pii_looking_column_without_pii_flag_points_at_the_column(make_workspace, column):
    text = BASE + f"columns:\n  - name: id\n  - name: {column}\n    type: varchar\n"
    error = only_error(make_workspace, text)
    assert (error.line, error.field) == (10, "columns[1]")
    assert f"column {column!r} looks like personal data" in error.message


@pytest.mark.parametrize("flag", ["true", "false"])
def test_pii_column_with_an_explicit_flag_is_accepted(make_workspace, flag):
    text = BASE + f"columns:\n  - name: customer_email\n    pii: {flag}\n"
    _, errors = scan_errors(make_workspace, text)
    assert errors == []


def test_headerless_csv_needs_column_names(make_workspace):
    error = only_error(make_workspace, BASE + "  header: false\n")
    assert (error.line, error.field) == (5, "extract")
    assert "column_names" in error.message


@pytest.mark.parametrize(("kind", "hint"), [("parquett", "did you mean 'parquet'?"), ("jsn", "did you mean 'json'?")])
def test_unknown_extract_type_has_a_hint(make_workspace, kind, hint):
    error = only_error(make_workspace, BASE.replace("  type: csv", f"  type: {kind}"))
    assert (error.line, error.field, error.message, error.hint) == (5, "extract.type", f"unknown type {kind!r}", hint)


def test_unknown_extract_type_far_from_any_lists_them(make_workspace):
    error = only_error(make_workspace, BASE.replace("  type: csv", "  type: ftp"))
    assert error.field == "extract.type"
    for kind in ("csv", "parquet", "json", "ndjson", "delta"):
        assert kind in error.hint


def test_missing_extract_type(make_workspace):
    error = only_error(make_workspace, BASE.replace("  type: csv\n", ""))
    assert (error.line, error.field, error.message) == (5, "extract", "`type:` is missing")


def test_two_sources_with_the_same_name_in_one_usecase(make_workspace):
    kit = make_workspace()
    first = kit.write_source(BASE, name="a_sensors")
    second = kit.write_source(BASE, name="b_sensors")
    scan = kit.open().scan
    (error,) = [e for e in scan.errors if e.severity == "error"]
    assert (error.path, error.line, error.field) == (second, 1, "name")
    assert error.message == f"source 'sensors' is already declared in {first.name}"
    assert [s.path for s in scan.sources] == [first]


def test_same_source_name_in_two_usecases_is_fine(make_workspace):
    kit = make_workspace()
    kit.write_source(BASE, name="sensors", usecase="plant_a")
    kit.write_source(BASE, name="sensors", usecase="plant_b")
    scan = kit.open().scan
    assert [e for e in scan.errors if e.severity == "error"] == []
    assert sorted(s.key for s in scan.sources) == ["plant_a/sensors", "plant_b/sensors"]


def test_usecase_folder_name_must_be_an_identifier(make_workspace):
    kit = make_workspace()
    kit.write_source(BASE, name="sensors", usecase="Bad Name")
    (error,) = kit.open().scan.errors
    assert "'Bad Name' is not lower_snake_case" in error.message


def test_workspace_sources_refuses_an_invalid_workspace(make_workspace):
    kit = make_workspace()
    kit.write_source(BASE, name="good")
    kit.write_source(BASE.replace("name: sensors", "name: other") + "ownr: x@example.com\n", name="bad")
    with pytest.raises(SpecValidationError) as raised:
        kit.open().sources()
    assert [(e.path.name, e.line, e.field) for e in raised.value.errors] == [("bad.yaml", 8, "ownr")]
    assert "bad.yaml:8: ownr: unknown key 'ownr'" in str(raised.value)


def test_all_errors_of_a_file_are_reported_at_once(make_workspace):
    text = BASE.replace("owner: data-team@example.com\n", "") + "ownr: x@example.com\non_invalid_rows: nope\n"
    _, errors = scan_errors(make_workspace, text)
    assert sorted((e.line, e.field) for e in errors) == [(1, "owner"), (7, "ownr"), (8, "on_invalid_rows")]


def test_double_underscore_in_a_source_name_is_reserved(tmp_path: Path) -> None:
    from foundation.specs.source import SourceSpec

    with pytest.raises(ValueError, match="reserves"):
        SourceSpec.model_validate(
            {
                "name": "orders__quarantine",
                "description": "clashes with the quarantine of orders",
                "owner": "a@b.co",
                "schedule": "manual",
                "extract": {"type": "csv", "path": "x.csv"},
            }
        )
