"""The checks a source declares, with stable names: what Dagster shows, what results are stored under.

Pure: from a `SourceSpec` to a list of `DeclaredCheck`s. Names are `<column>__<rule>` for column rules and
`<rule>[__<columns>]` for table rules, unless the YAML sets `name:`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from foundation.specs.rules import (
    AcceptedValuesRule,
    BetweenRule,
    ColumnUniqueRule,
    CompletenessRule,
    CustomRule,
    ExpressionRule,
    FreshnessRule,
    MaxNullPercentRule,
    MaxRule,
    MinRule,
    NotNullRule,
    PanderaRule,
    ReferencesRule,
    RegexRule,
    RowCountChangeRule,
    Rule,
    SchemaRule,
    TableUniqueRule,
)
from foundation.specs.source import SourceSpec

Stage = Literal["parse", "row", "load", "table"]
ROW_RULES = (NotNullRule, BetweenRule, MinRule, MaxRule, AcceptedValuesRule, RegexRule, ExpressionRule, CustomRule)
LOAD_RULES = (MaxNullPercentRule, CompletenessRule, RowCountChangeRule, SchemaRule)
TABLE_RULES = (ColumnUniqueRule, TableUniqueRule, FreshnessRule, ReferencesRule)

RECONCILE_CHECK = "rows_reconcile"
PARSED_CHECK = "rows_parsed_and_typed"


@dataclass(frozen=True)
class DeclaredCheck:
    name: str
    stage: Stage
    severity: str  # error | warn
    description: str
    column: str | None = None
    rule: Rule | None = None

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


def describe(rule: Rule, column: str | None) -> str:
    on = f"{column}: " if column else ""
    match rule:
        case NotNullRule():
            return f"{on}no null values"
        case BetweenRule(between=(low, high)):
            return f"{on}values between {low:g} and {high:g}"
        case MinRule(min=low):
            return f"{on}values at least {low:g}"
        case MaxRule(max=high):
            return f"{on}values at most {high:g}"
        case AcceptedValuesRule(accepted_values=values):
            return f"{on}values in {values}"
        case RegexRule(regex=pattern):
            return f"{on}values match {pattern}"
        case MaxNullPercentRule(max_null_percent=pct):
            return f"{on}at most {pct:g}% nulls in a load"
        case ColumnUniqueRule():
            return f"{on}unique across the table"
        case TableUniqueRule(unique=columns):
            return f"({', '.join(columns)}) unique across the table"
        case FreshnessRule(freshness=f):
            what = f"newest {f.column}" if f.column else "last successful load"
            limits = ", ".join(
                x
                for x in (
                    f"warn after {f.warn_after}" if f.warn_after else "",
                    f"error after {f.error_after}" if f.error_after else "",
                )
                if x
            )
            return f"age of the {what}: {limits}"
        case CompletenessRule(completeness=c):
            parts = [f"at least {c.min_rows} rows a load"] if c.min_rows is not None else []
            parts += [f"{col} at most {pct:g}% null" for col, pct in c.max_null_percent.items()]
            return "completeness: " + ", ".join(parts)
        case RowCountChangeRule(row_count_change=r):
            return f"rows landed change by at most {r.max_percent:g}% against the previous load"
        case ReferencesRule(references=r):
            return f"{r.column} values exist in {r.source}.{r.to_column or r.column}"
        case ExpressionRule(expression=sql):
            return f"every row meets: {sql}"
        case SchemaRule(schema_=s):
            return f"schema contract: {s.contract}"
        case CustomRule(custom=c):
            return f"custom check {c.function}"
        case PanderaRule(pandera=p):
            args = ", ".join(f"{k}={v!r}" for k, v in p.args.items())
            return f"{on}pandera check {p.check}({args})"
    return rule.kind


def _stage(rule: Rule) -> Stage:
    if isinstance(rule, PanderaRule):
        return rule.pandera.level
    if isinstance(rule, ROW_RULES):
        return "row"
    if isinstance(rule, LOAD_RULES):
        return "load"
    return "table"


def _default_name(rule: Rule, column: str | None) -> str:
    if column is not None and isinstance(rule, PanderaRule):
        return f"{column}__{rule.pandera.check.lower()}"
    if column is not None:
        return f"{column}__{rule.kind}"
    if isinstance(rule, TableUniqueRule):
        return "unique__" + "__".join(rule.unique)
    if isinstance(rule, ReferencesRule):
        return f"{rule.references.column}__references"
    if isinstance(rule, FreshnessRule):
        return f"freshness__{rule.freshness.column}" if rule.freshness.column else "freshness__last_load"
    if isinstance(rule, SchemaRule):
        return "schema_contract"
    if isinstance(rule, PanderaRule):
        return rule.pandera.check.lower()
    return rule.kind


def _severity(rule: Rule) -> str:
    if isinstance(rule, FreshnessRule):  # thresholds say it: an error threshold makes the check an error check
        return "error" if rule.freshness.error_after else "warn"
    if isinstance(rule, SchemaRule):
        return {"freeze": "error", "warn": "warn", "evolve": "warn"}[rule.schema_.contract]
    return rule.severity


def declared_checks(spec: SourceSpec) -> list[DeclaredCheck]:
    """Every check of a source, built-in ones first; names are unique (a clash gets a numeric suffix)."""
    checks = [
        DeclaredCheck(
            RECONCILE_CHECK, "load", "error", "rows read = landed + quarantined + dropped + stale + superseded"
        ),
        DeclaredCheck(
            PARSED_CHECK, "parse", "warn", "rows that parse, cast to the declared types and have required values"
        ),
    ]
    pairs: list[tuple[Rule, str | None]] = [(rule, col.name) for col in spec.columns for rule in col.checks]
    pairs += [(rule, None) for rule in spec.checks]
    if not any(isinstance(rule, SchemaRule) for rule, _ in pairs):
        pairs.append((SchemaRule.model_validate({"schema": {"contract": "evolve"}}), None))
    seen: dict[str, int] = {c.name: 1 for c in checks}
    for rule, column in pairs:
        name = rule.name or _default_name(rule, column)
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        checks.append(DeclaredCheck(name, _stage(rule), _severity(rule), describe(rule, column), column, rule))
    return checks
