"""The quality gate of one load: screens batches in flight, decides the load before the commit, checks the
table after it. The runner calls it at those three moments; everything it concludes is a `CheckOutcome`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import duckdb
import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.connectors.files import SOURCE_FILE_COLUMN
from foundation.engine.connectors.landing_sql import LINE_COLUMN, LINEAGE_COLUMNS
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import storage_options_of
from foundation.engine.quality.checks import PARSED_CHECK, RECONCILE_CHECK, DeclaredCheck, declared_checks
from foundation.engine.quality.load_rules import LoadStats, evaluate_load_rules, schema_changes, schema_outcome
from foundation.engine.quality.outcomes import CheckOutcome, QualityGateError
from foundation.engine.quality.row_rules import FAILURES_COLUMN, RowValidator, RuleCompileError, SqlRowRules, row_json
from foundation.engine.quality.table_rules import evaluate_table_rules, freshness_outcome, pandera_table_outcome
from foundation.specs.rules import (
    AcceptedValuesRule,
    BetweenRule,
    CompletenessRule,
    FreshnessRule,
    MaxRule,
    MinRule,
    PanderaRule,
    ReferencesRule,
    RegexRule,
    SchemaRule,
    TableUniqueRule,
)
from foundation.specs.source import SourceSpec


def _data_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f for f in schema if f.name not in (*LINEAGE_COLUMNS, LINE_COLUMN)])


def _check_columns(checks: list[DeclaredCheck], types: dict[str, str]) -> None:
    """Load and table rules name columns that exist: else a load rule passes unchecked, and a table rule
    fails in DuckDB after the commit (row rules are checked by the `RowValidator`)."""
    names = set(types)
    for check in checks:
        rule = check.rule
        used: list[str] = []
        if check.column is not None and check.stage != "row":
            used = [check.column]
        elif isinstance(rule, TableUniqueRule):
            used = list(rule.unique)
        elif isinstance(rule, FreshnessRule) and rule.freshness.column:
            used = [rule.freshness.column]
            kind = types.get(used[0], "timestamp")
            if not kind.startswith(("timestamp", "date")):
                raise RuleCompileError(
                    f"check {check.name}: freshness needs a date or timestamp column, but {used[0]} is {kind}; "
                    "declare its type (e.g. type: timestamp)"
                )
        elif isinstance(rule, CompletenessRule):
            used = list(rule.completeness.max_null_percent)
        elif isinstance(rule, ReferencesRule):
            used = [rule.references.column]
        unknown = [c for c in used if c not in names]
        if unknown:
            raise RuleCompileError(f"check {check.name}: column {', '.join(unknown)} is not in the landed data")


def _check_hashed_columns(checks: list[DeclaredCheck], spec: SourceSpec) -> None:
    """A PII column is hashed before the rules see it: a rule on its values would judge the hash."""
    hashed = {c.name for c in spec.columns if c.pii and c.pii_handling == "hash"}
    for check in checks:
        if check.column in hashed and isinstance(
            check.rule, BetweenRule | MinRule | MaxRule | AcceptedValuesRule | RegexRule | PanderaRule
        ):
            raise RuleCompileError(
                f"check {check.name}: {check.column} is PII, hashed at ingestion, so {check.rule.kind} would check "
                "the hash: remove the rule, or keep the value (pii_handling: keep)"
            )


class QualityGate:
    def __init__(
        self,
        workspace: Workspace,
        source: SourceRef,
        landed_schema: pa.Schema,
        existing_schema: pa.Schema | None,
        previous_rows: int | None,
        in_sql: SqlRowRules | None = None,
    ) -> None:
        """`in_sql`: the row rules the landing query evaluates (`compile_sql_row_rules`); pandera runs the rest."""
        self.workspace = workspace
        self.source = source
        self.checks: list[DeclaredCheck] = declared_checks(source.spec)
        existing_types = {f.name: str(f.type) for f in existing_schema} if existing_schema is not None else {}
        _check_columns(self.checks, {**existing_types, **{f.name: str(f.type) for f in landed_schema}})
        _check_hashed_columns(self.checks, source.spec)
        self.validator = RowValidator(self.checks, landed_schema, workspace.root, in_sql)
        # `pandera:` rules of level load: run on each batch like row rules, but a failing row refuses the load.
        self.load_validator = RowValidator(self.checks, landed_schema, workspace.root, stage="load")
        self.stats = LoadStats()
        self.previous_rows = previous_rows
        self.outcomes: list[CheckOutcome] = []
        self._failing: Counter[str] = Counter()
        self._samples: dict[str, list[str]] = {}
        self.changes = schema_changes(
            _data_schema(existing_schema) if existing_schema is not None else None, _data_schema(landed_schema)
        )

    def _of_stage(self, stage: str) -> list[DeclaredCheck]:
        return [c for c in self.checks if c.stage == stage]

    def check_schema(self) -> None:
        """Before anything is read: the schema contract (and Delta's own limit: no in-place retyping)."""
        check = next(c for c in self.checks if isinstance(c.rule, SchemaRule))
        outcome = schema_outcome(check, self.changes)
        if self.changes.retyped and self.source.spec.load.mode != "replace":
            outcome = CheckOutcome(
                check.name,
                "load",
                "error",
                False,
                check.description,
                failing=len(self.changes.retyped),
                observed=self.changes.describe() + " (a Delta table cannot change a column's type in place: "
                "cast it back in the YAML, or reload with mode: replace)",
            )
        self.outcomes.append(outcome)
        if not outcome.passed and outcome.severity == "error":
            raise QualityGateError(
                f"{self.source.key}: schema contract refused the load: {outcome.observed}", [outcome]
            )

    def screen(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[dict[str, object]]]:
        """Rows that pass every `error` row rule, and quarantine records for those that don't.

        `batch` may carry the landing query's verdicts (`FAILURES_COLUMN`); the rows returned do not."""
        verdict = self.validator.validate(batch)
        if FAILURES_COLUMN in batch.schema.names:
            batch = batch.drop_columns([FAILURES_COLUMN])
        self._failing.update(verdict.failing)
        for name, values in verdict.samples.items():
            sample = self._samples.setdefault(name, [])
            sample.extend(v for v in values if v not in sample and len(sample) < 5)
        failed: list[dict[str, object]] = []
        if verdict.error_rows:
            files = batch.column(SOURCE_FILE_COLUMN)
            lines = batch.column(LINE_COLUMN) if LINE_COLUMN in batch.schema.names else None
            data_columns = batch.select([n for n in batch.schema.names if n not in (*LINEAGE_COLUMNS, LINE_COLUMN)])
            for index, failures in sorted(verdict.error_rows.items()):
                failed.append(
                    {
                        SOURCE_FILE_COLUMN: files[index].as_py(),
                        "_source_line": lines[index].as_py() if lines is not None else None,
                        "_rule": ", ".join(name for name, _ in failures),
                        "_invalid_reason": "; ".join(message for _, message in failures),
                        "_raw_record": row_json(data_columns, index),
                    }
                )
            keep = pa.array([i not in verdict.error_rows for i in range(batch.num_rows)])
            batch = batch.filter(keep)
        if self.load_validator.active:
            load_verdict = self.load_validator.validate(batch)
            self._failing.update(load_verdict.failing)
            for name, values in load_verdict.samples.items():
                sample = self._samples.setdefault(name, [])
                sample.extend(v for v in values if v not in sample and len(sample) < 5)
        self.stats.add(batch)
        return batch, failed

    def finish_load(self, parse_failures: int, parse_sample: list[str]) -> None:
        """At the end of the stream, before the commit: row and load outcomes; refuse the load on an error."""
        parsed = next(c for c in self.checks if c.name == PARSED_CHECK)
        self.outcomes.append(
            CheckOutcome(
                parsed.name,
                "parse",
                parsed.severity,
                parse_failures == 0,
                parsed.description,
                failing=parse_failures,
                observed=f"{parse_failures} rows quarantined",
                sample=parse_sample[:5],
            )
        )
        for check in self._of_stage("row"):
            failing = self._failing[check.name]
            # An error rule is enforced by quarantining its failing rows: what is published meets it, so it
            # passes (the quarantine count is its evidence). A warn rule lets the rows through: it warns.
            enforced = check.severity == "error"
            observed = f"{failing} rows {'quarantined' if enforced else 'landed anyway'}" if failing else "all rows"
            self.outcomes.append(
                CheckOutcome(
                    check.name,
                    "row",
                    check.severity,
                    enforced or failing == 0,
                    check.description,
                    failing=failing,
                    observed=observed,
                    sample=self._samples.get(check.name, []),
                )
            )
        load_checks = [c for c in self._of_stage("load") if not isinstance(c.rule, SchemaRule) and c.rule is not None]
        load_outcomes = evaluate_load_rules(load_checks, self.stats, self.previous_rows)
        for check in self.load_validator.checks:
            failing = self._failing[check.name]
            load_outcomes.append(
                CheckOutcome(
                    check.name,
                    "load",
                    check.severity,
                    failing == 0,
                    check.description,
                    failing=failing,
                    observed=f"{failing} of {self.stats.rows_landed} rows fail" if failing else "all rows",
                    sample=self._samples.get(check.name, []),
                )
            )
        self.outcomes.extend(load_outcomes)
        refused = [o for o in load_outcomes if not o.passed and o.severity == "error"]
        if refused:
            reasons = "; ".join(f"{o.check}: {o.observed}" for o in refused)
            raise QualityGateError(f"{self.source.key}: load refused before publishing: {reasons}", refused)

    def after_commit(self, rows_reconcile: bool, reconcile_detail: str, loaded_at: datetime) -> list[CheckOutcome]:
        """Table rules on the new snapshot, and the reconciliation of the counts."""
        reconcile = next(c for c in self.checks if c.name == RECONCILE_CHECK)
        self.outcomes.append(
            CheckOutcome(
                reconcile.name,
                "load",
                reconcile.severity,
                rows_reconcile,
                reconcile.description,
                observed=reconcile_detail,
            )
        )
        table_checks = self._of_stage("table")
        if table_checks:
            self.outcomes.extend(self.table_outcomes(loaded_at, loaded_at))
        return self.outcomes

    def table_outcomes(self, now: datetime, last_load_at: datetime | None) -> list[CheckOutcome]:
        return evaluate_table_outcomes(self.workspace, self.source, self._of_stage("table"), now, last_load_at)


def nothing_new_outcomes(
    workspace: Workspace, source: SourceRef, now: datetime, last_load_at: datetime | None
) -> list[CheckOutcome]:
    """A run with nothing new to load: table rules measured again (freshness matters most when data stops
    arriving); row and load rules have nothing to judge and pass as such (Dagster wants every check answered),
    except `min_rows` on a source that never landed (no table: 0 rows)."""
    checks = declared_checks(source.spec)
    table = [c for c in checks if c.stage == "table"]
    outcomes = evaluate_table_outcomes(workspace, source, table, now, last_load_at) if table else []
    for c in checks:
        if c.stage == "table":
            continue
        min_rows = c.rule.completeness.min_rows if isinstance(c.rule, CompletenessRule) else None
        # Never landed: no earlier load result to keep, and 0 rows is below a declared minimum.
        never_enough = last_load_at is None and bool(min_rows)
        observed = f"0 rows landed, fewer than {min_rows} (never loaded)" if never_enough else "nothing new to load"
        outcomes.append(CheckOutcome(c.name, c.stage, c.severity, not never_enough, c.description, observed=observed))
    return outcomes


def evaluate_table_outcomes(
    workspace: Workspace, source: SourceRef, checks: list[DeclaredCheck], now: datetime, last_load_at: datetime | None
) -> list[CheckOutcome]:
    """Table rules of `source` on its current bronze snapshot (also used by `foundation quality` for freshness)."""
    options = storage_options_of(workspace)
    con = duckdb.connect()
    try:
        try:
            uri = workspace.bronze_uri(source.usecase, source.name)
            relation = delta_relation_sql(con, uri, storage_options=options, empty_name="_self")
        except TableNotFoundError:  # never landed (e.g. a first load with nothing to load): no data to judge
            return [_no_table_outcome(check, now) for check in checks]
        parents: dict[str, str | None] = {}
        for i, check in enumerate(checks):
            if isinstance(check.rule, ReferencesRule):
                target = check.rule.references.source
                usecase, name = target.split("/", 1) if "/" in target else (source.usecase, target)
                try:
                    parent = workspace.bronze_uri(usecase, name)
                    parents[target] = delta_relation_sql(con, parent, storage_options=options, empty_name=f"_p{i}")
                except TableNotFoundError:
                    parents[target] = None
        outcomes = evaluate_table_rules(con, checks, relation, now, last_load_at, parents)
    finally:
        con.close()
    declared = [c for c in checks if isinstance(c.rule, PanderaRule)]
    if declared:
        outcomes += [pandera_table_outcome(c, uri, options, workspace.root) for c in declared]
    return outcomes


def _no_table_outcome(check: DeclaredCheck, now: datetime) -> CheckOutcome:
    """A table rule on a source that has no bronze table yet: freshness fails ("no data"); the others have
    no rows that could break them."""
    if isinstance(check.rule, FreshnessRule):
        return freshness_outcome(check, None, now)
    return CheckOutcome(check.name, "table", check.severity, True, check.description, observed="no data yet")
