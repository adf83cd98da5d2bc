"""`foundation check` errors for quality rules: file, line, field, message and a fix (via `scan_usecases`)."""

from __future__ import annotations

import pytest

from foundation.core.workspace import scan_usecases
from foundation.engine.quality.checks import declared_checks

# Lines 1-7 of every spec; each case appends lines, so the line of the error is known.
BASE = """\
name: sensors
description: Sensor readings of the test rig
owner: data-team@example.com
schedule: "0 * * * *"
extract:
  type: csv
  path: landing/sensors/*.csv
"""
COLUMN = "columns:\n  - name: temp\n    type: double\n    checks:\n"  # lines 8-11; column rules from line 12


def rule_errors(make_workspace, text: str):
    kit = make_workspace()
    path = kit.write_source(BASE + text, name="sensors")
    errors = [e for e in scan_usecases(kit.root).errors if e.path == path]
    return kit, errors


@pytest.mark.parametrize(
    ("text", "line", "field", "message", "hint"),
    [
        (
            COLUMN + "      - betwen: [0, 10]\n",
            12,
            "columns[0].checks[0]",
            "unknown rule 'betwen'",
            "did you mean 'between'?",
        ),
        (
            "checks:\n  - uniqe: [id]\n",
            9,
            "checks[0]",
            "unknown rule 'uniqe'",
            "did you mean 'unique'?",
        ),
        (
            COLUMN + "      - between: [0, 10]\n      - between: [10, 0]\n",
            13,
            "columns[0].checks[1].between",
            "between: [10.0, 0.0]: the low bound comes first",
            "",
        ),
        (
            "columns:\n  - name: code\n    checks:\n      - regex: '[A-Z'\n",
            11,
            "columns[0].checks[0].regex",
            "regex '[A-Z' does not compile: unterminated character set at position 0",
            "",
        ),
        (
            "checks:\n  - unique: [id]\n  - freshness: {column: ts, warn_after: 2 hours}\n",
            10,
            "checks[1].freshness.warn_after",
            "'2 hours' is not a duration: write a number and a unit, like 30m, 2h, 1d or 1w",
            "",
        ),
        (
            "checks:\n  - unique: [id]\n    severity: eror\n",
            10,
            "checks[0].severity",
            "'eror' is not allowed: input should be 'error' or 'warn'",
            "did you mean 'error'?",
        ),
        (
            COLUMN + "      - max: 100\n        severity: warning\n",
            13,
            "columns[0].checks[0].severity",
            "'warning' is not allowed: input should be 'error' or 'warn'",
            "did you mean 'warn'?",
        ),
        (
            "checks:\n  - freshness:\n      column: ts\n",
            9,
            "checks[0].freshness",
            "freshness needs warn_after and/or error_after, e.g. {warn_after: 2h, error_after: 6h}",
            "",
        ),
        (
            "checks:\n  - freshness: {warn_after: 6h, error_after: 2h}\n",
            9,
            "checks[0].freshness",
            "freshness: warn_after must not be longer than error_after",
            "",
        ),
    ],
    ids=[
        "unknown-column-rule",
        "unknown-table-rule",
        "between-order",
        "bad-regex",
        "bad-duration",
        "severity-typo",
        "severity-warning",
        "freshness-no-threshold",
        "freshness-order",
    ],
)
def test_rule_errors_name_the_line_field_and_fix(text, line, field, message, hint, make_workspace):
    kit, errors = rule_errors(make_workspace, text)
    assert [(e.line, e.field, e.message, e.hint) for e in errors] == [(line, field, message, hint)]
    assert errors[0].severity == "error"
    where = f"usecases/uc/sources/sensors.yaml:{line}: {field}: {message}"
    assert errors[0].format(relative_to=kit.root) == (f"{where} (hint: {hint})" if hint else where)


def test_every_rule_error_in_a_file_is_reported(make_workspace):
    text = COLUMN + "      - betwen: [0, 10]\n      - min: 0\n        severity: eror\n" + "checks:\n  - uniqe: [id]\n"
    _, errors = rule_errors(make_workspace, text)
    assert [(e.line, e.field) for e in errors] == [
        (12, "columns[0].checks[0]"),
        (14, "columns[0].checks[1].severity"),
        (16, "checks[0]"),
    ]


def test_a_table_rule_under_a_column_is_reported(make_workspace):
    _, errors = rule_errors(make_workspace, COLUMN + "      - freshness: {warn_after: 1h}\n")
    ((error),) = errors
    assert (error.line, error.field, error.message) == (12, "columns[0].checks[0]", "unknown rule 'freshness'")
    assert error.hint.startswith("known rules here: accepted_values, between, max, max_null_percent, min")


def test_valid_rules_of_every_kind_pass(make_workspace):
    text = (
        COLUMN
        + "      - between: [-40, 200]\n      - min: -40\n      - max: 200\n      - not_null: true\n"
        + "      - max_null_percent: 2\n        severity: warn\n      - unique: true\n        name: temp_unique\n"
        + "  - name: kind\n    checks:\n      - accepted_values: [L, M, H]\n      - regex: '^[LMH]$'\n"
        + "checks:\n"
        + "  - freshness: {column: ts, warn_after: 2h, error_after: 1d}\n"
        + "  - freshness: {warn_after: 30m}\n"
        + "  - completeness: {min_rows: 1, max_null_percent: {temp: 5}}\n"
        + "  - unique: [temp, kind]\n"
        + "  - row_count_change: {max_percent: 50}\n"
        + "  - references: {column: kind, source: other/kinds, to_column: code}\n"
        + "  - expression: temp < 1000\n"
        + "  - schema: {contract: freeze}\n"
        + "  - custom: {function: 'usecases.checks:fn'}\n    severity: warn\n"
    )
    kit, errors = rule_errors(make_workspace, text)
    assert errors == []
    (source,) = scan_usecases(kit.root).sources
    assert [c.name for c in declared_checks(source.spec)] == [
        "rows_reconcile",
        "rows_parsed_and_typed",
        "temp__between",
        "temp__min",
        "temp__max",
        "temp__not_null",
        "temp__max_null_percent",
        "temp_unique",
        "kind__accepted_values",
        "kind__regex",
        "freshness__ts",
        "freshness__last_load",
        "completeness",
        "unique__temp__kind",
        "row_count_change",
        "kind__references",
        "expression",
        "schema_contract",
        "custom",
    ]


def test_clashing_check_names_get_a_suffix(make_workspace):
    text = (
        "checks:\n  - expression: a > 0\n  - expression: b > 0\n    severity: warn\n"
        "  - unique: [a]\n    name: expression\n"
    )
    kit, errors = rule_errors(make_workspace, text)
    assert errors == []
    (source,) = scan_usecases(kit.root).sources
    checks = {c.name: c for c in declared_checks(source.spec)}
    assert [n for n in checks if n.startswith("expression")] == ["expression", "expression_2", "expression_3"]
    assert (checks["expression_2"].severity, checks["expression_2"].description) == ("warn", "every row meets: b > 0")
    assert checks["expression_3"].stage == "table"
