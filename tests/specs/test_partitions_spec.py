"""The `partitions:` block: what `foundation check` refuses, at the line of the key at fault, with the fix."""

from __future__ import annotations

from datetime import datetime

import pytest

from foundation.specs.partitions import PartitionsSpec

# Lines 1-12 of every spec below; tests append the `partitions:` block, so its line numbers are known.
BASE = """\
name: telemetry
description: Hourly readings of the test rig
owner: data-team@example.com
schedule: "@daily"
extract:
  type: csv
  path: landing/telemetry/*.csv
load: {mode: replace}
columns:
  - {name: ts, type: timestamp, required: true}
  - {name: label, type: varchar}
  - {name: day, type: date}
"""


def errors_of(make_workspace, text: str):
    kit = make_workspace()
    path = kit.write_source(text, name="telemetry")
    scan = kit.open().scan
    return kit, [e for e in scan.errors if e.path == path], scan


def only_error(make_workspace, text: str):
    kit, errors, _ = errors_of(make_workspace, text)
    assert len(errors) == 1, [e.format() for e in errors]
    return kit, errors[0]


def test_a_column_partition_is_valid(make_workspace):
    _, errors, scan = errors_of(make_workspace, BASE + "partitions: {by: daily, column: ts, start: 2026-01-01}\n")
    assert errors == []
    (source,) = scan.sources
    assert source.spec.partitions.column == "ts"
    assert source.spec.partitions.start_time == datetime(2026, 1, 1)


def test_an_undeclared_partition_column_points_at_its_line(make_workspace):
    text = BASE + "partitions:\n  by: daily\n  column: event_ts\n  start: 2026-01-01\n"
    kit, error = only_error(make_workspace, text)
    assert error.format(relative_to=kit.root).startswith(
        "usecases/uc/sources/telemetry.yaml:15: partitions.column: partition column 'event_ts' is not declared"
    )
    assert "declared: ts, label, day" in error.message
    assert "add {name: event_ts, type: timestamp, required: true}" in error.message


def test_a_partition_column_must_be_a_date_or_timestamp(make_workspace):
    _, error = only_error(make_workspace, BASE + "partitions:\n  by: daily\n  column: label\n  start: 2026-01-01\n")
    assert (error.line, error.field) == (15, "partitions.column")
    assert "declared with type varchar" in error.message


def test_a_partition_column_must_be_required(make_workspace):
    _, error = only_error(make_workspace, BASE + "partitions: {by: monthly, column: day, start: 2026-01-01}\n")
    assert (error.line, error.field) == (13, "partitions.column")
    assert "must be required: true" in error.message


@pytest.mark.parametrize(
    ("load", "mode"), [("{mode: merge, primary_key: [ts]}", "merge"), ("{mode: append}", "append")]
)
def test_partitions_need_the_replace_load_mode(make_workspace, load, mode):
    text = BASE.replace("load: {mode: replace}", f"load: {load}")
    _, error = only_error(make_workspace, text + "partitions: {by: daily, column: ts, start: 2026-01-01}\n")
    assert (error.line, error.field) == (13, "partitions")
    assert "partitions need load: {mode: replace}" in error.message and f"not mode: {mode}" in error.message


def test_a_bad_file_name_pattern_points_at_its_line(make_workspace):
    text = BASE + "partitions:\n  by: daily\n  start: 2026-01-01\n  file_name: 'telemetry_(?P<date>[0-9-+)\\.csv'\n"
    _, error = only_error(make_workspace, text)
    assert (error.line, error.field) == (16, "partitions.file_name")
    assert "is not a regular expression" in error.message


def test_a_file_name_pattern_needs_a_date_group(make_workspace):
    text = BASE + "partitions: {by: daily, start: 2026-01-01, file_name: 'telemetry_(.*)\\.csv'}\n"
    _, error = only_error(make_workspace, text)
    assert (error.line, error.field) == (13, "partitions.file_name")
    assert "no group named 'date'" in error.message


def test_column_or_file_name_not_both(make_workspace):
    text = BASE + "partitions: {by: daily, start: 2026-01-01, column: ts, file_name: '(?P<date>.*)\\.csv'}\n"
    _, error = only_error(make_workspace, text)
    assert (error.line, error.field) == (13, "partitions")
    assert "not both" in error.message


def test_an_unknown_grain_suggests_the_close_one(make_workspace):
    _, error = only_error(make_workspace, BASE + "partitions: {by: dayly, column: ts, start: 2026-01-01}\n")
    assert (error.line, error.field) == (13, "partitions.by")
    assert error.hint == "did you mean 'daily'?"


def test_file_name_partitions_need_files(make_workspace):
    text = BASE.replace(
        "extract:\n  type: csv\n  path: landing/telemetry/*.csv\n",
        "extract:\n  type: sql\n  url: ${DB_URL}\n  table: readings\n",
    )
    text += "partitions: {by: daily, start: 2026-01-01, file_name: '(?P<date>.*)'}\n"
    _, error = only_error(make_workspace, text)
    assert (error.line, error.field) == (14, "partitions.file_name")  # the sql extract is one line longer
    assert "has no file names" in error.message


def test_file_time_reads_the_date_group_of_the_name_only():
    spec = PartitionsSpec(by="daily", start="2026-01-01", file_name=r"telemetry_(?P<date>\d{4}-\d{2}-\d{2})\.csv")
    assert spec.file_time("landing/2026-12-31/telemetry_2026-01-02.csv") == datetime(2026, 1, 2)
    assert spec.file_time("landing/telemetry_2026-01-02.csv.gz") is None  # fullmatch: the name must match whole
    hourly = PartitionsSpec(
        by="hourly", start="2026-01-01T00:00", file_name=r"t_(?P<date>\d{8}_\d{2})\.csv", date_format="%Y%m%d_%H"
    )
    assert hourly.file_time("t_20260102_13.csv") == datetime(2026, 1, 2, 13)
    with pytest.raises(ValueError, match="does not read with the format '%Y%m%d_%H'"):
        hourly.file_time("t_20261302_13.csv")


def test_partitions_and_loading_on_file_arrival_do_not_mix(make_workspace):
    text = BASE.replace("load: {mode: replace}", "load: {mode: replace, on_new_files: true}")
    _, error = only_error(make_workspace, text + "partitions: {by: daily, column: ts, start: 2026-01-01}\n")
    assert (error.line, error.field) == (13, "partitions")
    assert "remove load.on_new_files" in error.message


def test_foundation_check_prints_the_partition_error_with_file_and_line(make_workspace, monkeypatch):
    from typer.testing import CliRunner

    from foundation.cli.main import app

    kit = make_workspace()
    kit.write_source(BASE + "partitions:\n  by: daily\n  column: event_ts\n  start: 2026-01-01\n", name="telemetry")
    monkeypatch.setenv("FOUNDATION_WORKSPACE", str(kit.root))
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "usecases/uc/sources/telemetry.yaml:15: partitions.column: partition column 'event_ts' is not declared" in (
        output
    )
