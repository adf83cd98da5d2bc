"""Table rules over a bronze Delta snapshot: the built-in ones (uniqueness across loads, freshness, references) as
SQL on DuckDB; a `pandera:` rule of level table by pandera's polars backend on a lazy scan of the snapshot."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from foundation.engine.quality.checks import DeclaredCheck
from foundation.engine.quality.outcomes import CheckOutcome
from foundation.engine.sql import quote_ident
from foundation.specs.rules import ColumnUniqueRule, FreshnessRule, ReferencesRule, TableUniqueRule, parse_duration

SAMPLE = 5


def _age_text(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h {rest // 60}m" if days else f"{hours}h {rest // 60}m"


def freshness_outcome(check: DeclaredCheck, newest: datetime | date | None, now: datetime) -> CheckOutcome:
    """Pass, warn or fail by the age of `newest` against the rule's thresholds (naive times are UTC; a date
    counts from the start of its day)."""
    assert isinstance(check.rule, FreshnessRule)
    rule = check.rule.freshness
    if newest is None:
        return CheckOutcome(check.name, "table", check.severity, False, check.description, observed="no data")
    if not isinstance(newest, datetime):
        newest = datetime(newest.year, newest.month, newest.day)
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    age = now - newest
    observed = f"age {_age_text(age)} (newest {newest:%Y-%m-%d %H:%M} UTC)"
    if rule.error_after and age > parse_duration(rule.error_after):
        return CheckOutcome(check.name, "table", "error", False, check.description, observed=observed)
    if rule.warn_after and age > parse_duration(rule.warn_after):
        return CheckOutcome(check.name, "table", "warn", False, check.description, observed=observed)
    return CheckOutcome(check.name, "table", check.severity, True, check.description, observed=observed)


def _unique_outcome(
    con: duckdb.DuckDBPyConnection, check: DeclaredCheck, relation: str, columns: list[str]
) -> CheckOutcome:
    keys = ", ".join(quote_ident(c) for c in columns)
    rows = con.execute(
        f"SELECT {keys}, count(*) AS n FROM {relation} GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC"
    ).fetchall()
    sample = [", ".join(str(v) for v in row[:-1]) + f" (x{row[-1]})" for row in rows[:SAMPLE]]
    return CheckOutcome(
        check.name,
        "table",
        check.severity,
        not rows,
        check.description,
        failing=len(rows),
        observed=f"{len(rows)} duplicated keys",
        sample=sample,
    )


def _references_outcome(
    con: duckdb.DuckDBPyConnection, check: DeclaredCheck, relation: str, parent: str | None
) -> CheckOutcome:
    assert isinstance(check.rule, ReferencesRule)
    ref = check.rule.references
    if parent is None:
        return CheckOutcome(
            check.name, "table", check.severity, False, check.description, observed=f"{ref.source} has not landed yet"
        )
    child, key = quote_ident(ref.column), quote_ident(ref.to_column or ref.column)
    rows = con.execute(
        f"SELECT DISTINCT c.{child} FROM {relation} c ANTI JOIN {parent} p ON c.{child} = p.{key} "
        f"WHERE c.{child} IS NOT NULL ORDER BY 1"
    ).fetchall()
    return CheckOutcome(
        check.name,
        "table",
        check.severity,
        not rows,
        check.description,
        failing=len(rows),
        observed=f"{len(rows)} values without a match",
        sample=[str(r[0]) for r in rows[:SAMPLE]],
    )


def evaluate_table_rules(
    con: duckdb.DuckDBPyConnection,
    checks: list[DeclaredCheck],
    relation: str,
    now: datetime,
    last_load_at: datetime | None,
    parents: dict[str, str | None],
) -> list[CheckOutcome]:
    """`relation`: the source's table; `parents`: referenced source -> its relation (None if not landed)."""
    outcomes: list[CheckOutcome] = []
    for check in checks:
        try:
            outcomes.extend(_evaluate(con, check, relation, now, last_load_at, parents))
        except Exception as exc:  # after the commit, an error is a failed check, not a failed load
            reason = str(exc).splitlines()[0]
            outcomes.append(
                CheckOutcome(
                    check.name, "table", check.severity, False, check.description, observed=f"could not run: {reason}"
                )
            )
    return outcomes


def _evaluate(
    con: duckdb.DuckDBPyConnection,
    check: DeclaredCheck,
    relation: str,
    now: datetime,
    last_load_at: datetime | None,
    parents: dict[str, str | None],
) -> list[CheckOutcome]:
    rule = check.rule
    if isinstance(rule, ColumnUniqueRule) and check.column:
        return [_unique_outcome(con, check, relation, [check.column])]
    if isinstance(rule, TableUniqueRule):
        return [_unique_outcome(con, check, relation, rule.unique)]
    if isinstance(rule, FreshnessRule):
        if rule.freshness.column:
            newest = con.execute(f"SELECT max({quote_ident(rule.freshness.column)}) FROM {relation}").fetchall()
            return [freshness_outcome(check, newest[0][0], now)]
        return [freshness_outcome(check, last_load_at, now)]
    if isinstance(rule, ReferencesRule):
        return [_references_outcome(con, check, relation, parents.get(rule.references.source))]
    return []


def pandera_table_outcome(
    check: DeclaredCheck, uri: str, storage_options: dict[str, str] | None, workspace_root: Path
) -> CheckOutcome:
    """A `pandera:` rule of level table: its pandera check on the whole table (polars scans the Delta snapshot;
    pandera runs data checks on a LazyFrame only at validation depth SCHEMA_AND_DATA). A failure, or a check that
    cannot run, fails the check: the data stays published."""
    try:
        import polars as pl  # lazy: polars and pandera (1-1.5 s) only for table-level pandera rules
        from pandera.config import ValidationDepth, config_context

        from foundation.engine.quality.row_rules import _pandera, pandera_declared_check, single_check_schema

        schema = single_check_schema(check, pandera_declared_check(check, workspace_root))
        frame = pl.scan_delta(uri, storage_options=storage_options)
        with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
            try:
                schema.validate(frame, lazy=True)
                return CheckOutcome(check.name, "table", check.severity, True, check.description, observed="all rows")
            except _pandera().errors.SchemaErrors as exc:
                cases = exc.failure_cases
    except Exception as exc:  # after the commit, an error is a failed check, not a failed load
        reason = str(exc).splitlines()[0]
        return CheckOutcome(
            check.name, "table", check.severity, False, check.description, observed=f"could not run: {reason}"
        )
    rows = [case for case in cases.iter_rows(named=True) if case["index"] is not None]
    if not rows:  # one answer for the table (False), or an error inside the check
        value = cases.row(0, named=True)["failure_case"]
        observed = "the check answered False" if value is False else f"could not run: {str(value).splitlines()[0]}"
        return CheckOutcome(check.name, "table", check.severity, False, check.description, observed=observed)
    sample: list[str] = []
    for case in rows:
        if len(sample) < SAMPLE and str(case["failure_case"]) not in sample:
            sample.append(str(case["failure_case"]))
    return CheckOutcome(
        check.name,
        "table",
        check.severity,
        False,
        check.description,
        failing=len(rows),
        observed=f"{len(rows)} rows fail",
        sample=sample,
    )
