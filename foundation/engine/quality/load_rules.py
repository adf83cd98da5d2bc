"""Load rules: decided from counts gathered while the load streams, before the Delta commit.

Pure functions over `LoadStats`; a failing `error` rule makes the runner refuse the load.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from foundation.engine.quality.checks import DeclaredCheck
from foundation.engine.quality.outcomes import CheckOutcome
from foundation.specs.rules import CompletenessRule, MaxNullPercentRule, RowCountChangeRule, SchemaRule


@dataclass
class LoadStats:
    rows_landed: int = 0
    nulls: Counter[str] = field(default_factory=Counter)

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows_landed += batch.num_rows
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if column.null_count:
                self.nulls[name] += column.null_count

    def null_percent(self, column: str) -> float:
        return 100.0 * self.nulls[column] / self.rows_landed if self.rows_landed else 0.0


@dataclass(frozen=True)
class SchemaChanges:
    new: list[str]
    missing: list[str]
    retyped: list[tuple[str, str, str]]  # column, old type, new type

    @property
    def any(self) -> bool:
        return bool(self.new or self.missing or self.retyped)

    def describe(self) -> str:
        parts = [f"new: {', '.join(self.new)}"] if self.new else []
        parts += [f"missing: {', '.join(self.missing)}"] if self.missing else []
        parts += [f"retyped: {', '.join(f'{c} {a}->{b}' for c, a, b in self.retyped)}"] if self.retyped else []
        return "; ".join(parts) or "unchanged"


def _comparable(arrow_type: pa.DataType) -> str:
    # Delta stores strings as large/view types and timestamps with a UTC zone name: compare by kind.
    text = str(arrow_type)
    for old, new in (("large_string", "string"), ("string_view", "string"), ("large_", ""), ("tz=Etc/UTC", "tz=UTC")):
        text = text.replace(old, new)
    return text


def schema_changes(existing: pa.Schema | None, incoming: pa.Schema) -> SchemaChanges:
    if existing is None:
        return SchemaChanges([], [], [])
    old = {f.name: f.type for f in existing}
    new = {f.name: f.type for f in incoming}
    return SchemaChanges(
        new=[n for n in new if n not in old],
        missing=[n for n in old if n not in new],
        retyped=[(n, str(old[n]), str(new[n])) for n in new if n in old and _comparable(old[n]) != _comparable(new[n])],
    )


def schema_outcome(check: DeclaredCheck, changes: SchemaChanges) -> CheckOutcome:
    assert isinstance(check.rule, SchemaRule)
    contract = check.rule.schema_.contract
    passed = contract == "evolve" or not changes.any
    return CheckOutcome(
        check.name,
        "load",
        check.severity,
        passed,
        check.description,
        failing=len(changes.new) + len(changes.missing) + len(changes.retyped),
        observed=changes.describe(),
    )


def evaluate_load_rules(checks: list[DeclaredCheck], stats: LoadStats, previous_rows: int | None) -> list[CheckOutcome]:
    outcomes: list[CheckOutcome] = []
    for check in checks:
        rule = check.rule
        if isinstance(rule, MaxNullPercentRule) and check.column:
            pct = stats.null_percent(check.column)
            outcomes.append(
                CheckOutcome(
                    check.name,
                    "load",
                    check.severity,
                    pct <= rule.max_null_percent,
                    check.description,
                    failing=stats.nulls[check.column],
                    observed=f"{pct:.2f}% null",
                )
            )
        elif isinstance(rule, CompletenessRule):
            problems = []
            c = rule.completeness
            if c.min_rows is not None and stats.rows_landed < c.min_rows:
                problems.append(f"{stats.rows_landed} rows landed, fewer than {c.min_rows}")
            for column, limit in c.max_null_percent.items():
                if stats.null_percent(column) > limit:
                    problems.append(f"{column} {stats.null_percent(column):.2f}% null > {limit:g}%")
            observed = "; ".join(problems) or f"{stats.rows_landed} rows landed"
            outcomes.append(
                CheckOutcome(
                    check.name,
                    "load",
                    check.severity,
                    not problems,
                    check.description,
                    failing=len(problems),
                    observed=observed,
                )
            )
        elif isinstance(rule, RowCountChangeRule):
            if not previous_rows:
                outcomes.append(
                    CheckOutcome(
                        check.name,
                        "load",
                        check.severity,
                        True,
                        check.description,
                        observed="no previous load to compare with",
                    )
                )
                continue
            change = 100.0 * abs(stats.rows_landed - previous_rows) / previous_rows
            outcomes.append(
                CheckOutcome(
                    check.name,
                    "load",
                    check.severity,
                    change <= rule.row_count_change.max_percent,
                    check.description,
                    observed=f"{previous_rows} -> {stats.rows_landed} rows ({change:.1f}%)",
                )
            )
    return outcomes
