"""Row rules: each one a pandera check, run inside the landing query when DuckDB can state it, else by pandera.

Every row rule is declared as a pandera check (`between` is `Check.in_range`, `regex` is `Check.str_matches`...).
The built-in checks that `pandera_sql` states exactly as SQL are evaluated by the landing query itself: it
adds one BIGINT column whose bits say which of them a row fails (`SqlRowRules`). The others (expressions, custom
functions) run through a pandera schema with the polars backend on each Arrow batch in flight: Arrow batches
become polars frames without a copy, and pandera reports failure cases with their row index. Either way, a
failing row is traced back to its rules and quarantined with the same reason.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa_arrow
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl
    from pandera.api.polars.types import PolarsData

from foundation.engine.quality.checks import DeclaredCheck
from foundation.engine.quality.pandera_sql import (
    MAX_SQL_CHECKS,
    PanderaCheck,
    check_predicate,
    failure,
    not_null_failure,
)
from foundation.specs.rules import (
    AcceptedValuesRule,
    BetweenRule,
    CustomRule,
    ExpressionRule,
    MaxRule,
    MinRule,
    NotNullRule,
    PanderaRule,
    RegexRule,
)


@contextmanager
def _without_pyspark() -> Iterator[None]:
    """pandera imports pyspark.pandas whenever pyspark is installed (the spark group, for dbt on Spark), and so does
    `register_check_method`: seconds of import and a pandas-version warning for nothing, since our rules run on
    polars. pandera guards every pyspark import with `except ImportError`, so hiding pyspark meanwhile only skips
    its Spark integration."""
    hidden = {name: sys.modules.get(name) for name in ("pyspark", "pyspark.pandas", "pyspark.sql")}
    if any(module is None for module in hidden.values()):
        for name in hidden:
            sys.modules.setdefault(name, None)  # type: ignore[assignment]  # None in sys.modules = ImportError
    try:
        yield
    finally:
        for name, module in hidden.items():
            if module is None:
                sys.modules.pop(name, None)


def _pandera():
    """pandera (and pandas, which it imports) costs over a second to import: only sources whose rules need it pay."""
    with _without_pyspark():
        import pandera.polars  # lazy: over a second with pandas; only sources with pandera rules pay
    return pandera.polars


def pandera_declared_check(check: DeclaredCheck, workspace_root: Path) -> pa.Check:
    """The pandera check a `pandera:` rule names, its module imported first (that registers it)."""
    assert isinstance(check.rule, PanderaRule)
    declared = check.rule.pandera
    pa = _pandera()
    if declared.module:
        if str(workspace_root) not in sys.path:
            sys.path.insert(0, str(workspace_root))
        try:
            with _without_pyspark():
                importlib.import_module(declared.module)
        except ImportError as exc:
            raise RuleCompileError(f"check {check.name}: cannot import {declared.module!r} ({exc})") from exc
    factory = getattr(pa.Check, declared.check, None)
    if not callable(factory) or declared.check.startswith("_"):
        where = f"{declared.module} does not register it" if declared.module else "no module registers it"
        raise RuleCompileError(
            f"check {check.name}: pandera has no check {declared.check!r} ({where}): register it with "
            "pandera.extensions.register_check_method in the module named by `module:`, or name a built-in "
            "check (in_range, isin, str_length, ...)"
        )
    try:
        return factory(**declared.args)
    except TypeError as exc:
        raise RuleCompileError(f"check {check.name}: pandera check {declared.check}: {exc}") from exc


def single_check_schema(check: DeclaredCheck, pandera_check: pa.Check) -> pa.DataFrameSchema:
    """A schema holding one check: pandera cannot gather in one frame the failures of a check answering one
    boolean with those of checks answering per row (a polars concat error), so each declared check runs alone."""
    pa = _pandera()
    if check.column is None:
        return pa.DataFrameSchema(checks=[pandera_check], strict=False, coerce=False)
    column = pa.Column(None, checks=[pandera_check], nullable=True)
    return pa.DataFrameSchema({check.column: column}, strict=False, coerce=False)


SAMPLE_SIZE = 5
# between/min/max bounds are numbers: a date or timestamp column would be compared as days or microseconds.
NUMERIC_PREFIXES = ("int", "uint", "float", "double", "halffloat", "decimal")


class RuleCompileError(ValueError):
    """A rule that cannot apply to its column (wrong type, unknown column, function not importable)."""


@dataclass
class BatchVerdict:
    """What the row rules said about one batch."""

    error_rows: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # row -> [(check, message)]
    failing: Counter[str] = field(default_factory=Counter)  # check -> failing rows (error and warn)
    samples: dict[str, list[str]] = field(default_factory=dict)  # check -> a few failing values


def load_custom_function(reference: str, workspace_root: Path) -> Callable[[pl.DataFrame], Any]:
    """`package.module:function`, importable from the workspace root (e.g. `usecases.fleet.checks:fn`)."""
    module_name, function_name = reference.split(":")
    if str(workspace_root) not in sys.path:
        sys.path.insert(0, str(workspace_root))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RuleCompileError(f"custom check {reference!r}: cannot import {module_name!r} ({exc})") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise RuleCompileError(f"custom check {reference!r}: {module_name} has no function {function_name!r}")
    return function


def _row_output(data: PolarsData, result: Any) -> pl.LazyFrame:
    """A custom function may answer per row (a boolean Series) or for the batch (a bool): make it per row."""
    import polars as pl  # lazy: 0.5 s, only pandera rules use it

    rows = data.lazyframe.select(pl.len()).collect().item()
    if isinstance(result, pl.Series):
        if len(result) != rows:
            raise RuleCompileError(f"the function returned {len(result)} values for {rows} rows")
        return pl.LazyFrame({"check_output": result.cast(pl.Boolean).fill_null(True)})
    return pl.LazyFrame({"check_output": [bool(result)] * rows})


def _custom_check(function: Callable[[pl.DataFrame], Any], name: str) -> pa.Check:
    return _pandera().Check(lambda data: _row_output(data, function(data.lazyframe.collect())), name=name)


def _expression_check(sql: str, name: str, columns: list[str]) -> pa.Check:
    import polars as pl  # lazy: like pandera, only sources with row rules pay its import (0.5 s)

    try:
        expression = pl.sql_expr(sql)
    except Exception as exc:
        raise RuleCompileError(f"expression {sql!r} is not valid SQL for a row condition: {exc}") from exc
    unknown = [c for c in expression.meta.root_names() if c not in columns]
    if unknown:
        raise RuleCompileError(f"check {name}: expression {sql!r} uses {', '.join(unknown)}, not in the landed data")
    # Like a SQL CHECK constraint: a row whose condition is unknown (a null operand) passes.
    return _pandera().Check(lambda data: data.lazyframe.select(expression.fill_null(True)), name=name)


def _is_ordered(arrow_type: str) -> bool:
    return arrow_type.lower().startswith(NUMERIC_PREFIXES)


def _typed_values(check: DeclaredCheck, values: list[Any], arrow_type: str) -> list[Any]:
    """Accepted values in the column's type: polars' `is_in` refuses mixed types, and pandera reports that as a
    failure without a row, which would let every row through."""
    kind = arrow_type.lower()
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if kind.startswith(("string", "large_string", "utf8", "large_utf8")):
        fits = all(isinstance(v, str) for v in values)
        fix = "quote them in the YAML ('1', 'yes')"
    elif kind.startswith("bool"):
        fits = all(isinstance(v, bool) for v in values)
        fix = "write true/false"
    elif kind.startswith(("int", "uint")):
        fits = numbers and all(float(v).is_integer() for v in values)
        values = [int(v) for v in values] if fits else values
        fix = "write whole numbers"
    elif kind.startswith(("float", "double", "halffloat", "decimal")):
        fits = numbers
        if fits:
            values = [Decimal(str(v)) for v in values] if kind.startswith("decimal") else [float(v) for v in values]
        fix = "write numbers"
    else:
        return values
    if not fits:
        raise RuleCompileError(
            f"check {check.name}: {check.column} is {arrow_type}, but accepted_values are {values}: {fix}"
        )
    return values


def pandera_check(rule: Any) -> PanderaCheck | None:
    """The pandera built-in check a column rule is (None for `not_null`, which is pandera's `nullable=False`)."""
    match rule:
        case BetweenRule(between=(low, high)):
            return PanderaCheck("in_range", {"min_value": low, "max_value": high})
        case MinRule(min=low):
            return PanderaCheck("greater_than_or_equal_to", {"min_value": low})
        case MaxRule(max=high):
            return PanderaCheck("less_than_or_equal_to", {"max_value": high})
        case AcceptedValuesRule(accepted_values=values):
            return PanderaCheck("isin", {"allowed_values": values})
        case RegexRule(regex=pattern):
            return PanderaCheck("str_matches", {"pattern": pattern})
        case PanderaRule(pandera=declared) if declared.module is None:  # a built-in check, named in the YAML
            return PanderaCheck(declared.check, dict(declared.args))
    return None


FAILURES_COLUMN = "_row_rule_failures"


@dataclass(frozen=True)
class SqlRowRules:
    """The row checks the landing query evaluates: bit i of `FAILURES_COLUMN` set = the row fails `checks[i]`."""

    checks: tuple[DeclaredCheck, ...] = ()
    failures_sql: str | None = None

    @property
    def columns(self) -> list[str]:
        """The columns the landing query gains (carried with each batch to the gate, never landed)."""
        return [FAILURES_COLUMN]

    def landing_sql(self, sql: str) -> str:
        """The landing query with the failure bits of its `ok` rows; null for the others (typing failures, stale
        rows), so that a batch whose rows all type is told by the column's null count, without a string compare."""
        bits = self.failures_sql or "CAST(0 AS BIGINT)"
        return f"SELECT *, CASE WHEN _status = 'ok' THEN {bits} END AS {FAILURES_COLUMN} FROM ({sql})"

    @staticmethod
    def every_row_ok(batch: pa_arrow.RecordBatch) -> bool:
        """True when every row of a landing-query batch has `_status` ok."""
        return batch.column(FAILURES_COLUMN).null_count == 0


def compile_sql_row_rules(checks: list[DeclaredCheck], column_types: dict[str, str]) -> SqlRowRules:
    """The row checks DuckDB can evaluate exactly as pandera would, given the landed DuckDB types.

    A check on a column of a type it does not fit is left out: the `RowValidator` refuses it before any row is
    read, with the message that says how to fix the YAML."""
    compiled: list[tuple[DeclaredCheck, str]] = []
    for check in checks:
        if check.stage != "row" or check.column is None or check.column not in column_types:
            continue
        duckdb_type = column_types[check.column]
        if isinstance(check.rule, NotNullRule):
            compiled.append((check, not_null_failure(check.column, duckdb_type)))
            continue
        spec = pandera_check(check.rule)
        predicate = check_predicate(spec, check.column, duckdb_type) if spec is not None else None
        if predicate is not None:
            compiled.append((check, failure(predicate)))
        if len(compiled) == MAX_SQL_CHECKS:
            break
    if not compiled:
        return SqlRowRules()
    bits = " + ".join(f"(CASE WHEN {sql} THEN {1 << i} ELSE 0 END)" for i, (_, sql) in enumerate(compiled))
    return SqlRowRules(tuple(check for check, _ in compiled), f"CAST({bits} AS BIGINT)")


def _pandera_order(checks: list[DeclaredCheck]) -> dict[str, int]:
    """The order pandera reports failures in: columns by first mention, `not_null` first within a column, then
    the column's checks as declared; frame checks last. A row's reasons are listed in this order."""
    columns: dict[str | None, list[DeclaredCheck]] = {}
    for check in checks:
        columns.setdefault(check.column, []).append(check)
    ordered: list[DeclaredCheck] = []
    for column, column_checks in columns.items():
        if column is None:
            continue
        ordered += [c for c in column_checks if isinstance(c.rule, NotNullRule)]
        ordered += [c for c in column_checks if not isinstance(c.rule, NotNullRule)]
    ordered += columns.get(None, [])
    return {check.name: i for i, check in enumerate(ordered)}


class RowValidator:
    """The row checks of one source, compiled once per load."""

    def __init__(
        self,
        checks: list[DeclaredCheck],
        schema: pa_arrow.Schema,
        workspace_root: Path,
        in_sql: SqlRowRules | None = None,
        stage: str = "row",
    ) -> None:
        """`stage` row: the row rules; load: the `pandera:` rules of level load, run on each batch the same way."""
        self.checks = [c for c in checks if c.stage == stage and (stage == "row" or isinstance(c.rule, PanderaRule))]
        self._single: list[tuple[DeclaredCheck, Any]] = []  # `pandera:` rules, each in its own schema
        self.in_sql = in_sql or SqlRowRules()
        in_sql_names = {c.name for c in self.in_sql.checks}
        self._order = _pandera_order(self.checks)
        types = {f.name: str(f.type) for f in schema}
        columns: dict[str, dict[str, Any]] = {}
        frame_checks: list[pa.Check] = []
        self._by_column_check: dict[tuple[str, int], DeclaredCheck] = {}
        self._by_frame_check: dict[int, DeclaredCheck] = {}
        self._not_null: dict[str, DeclaredCheck] = {}
        self.active = False  # pandera has checks to run on each batch
        if not self.checks:
            return  # no row rules: no pandera schema to build (nor to import)
        by_pandera: list[tuple[DeclaredCheck, Any]] = []
        for check in self.checks:
            rule = check.rule
            if check.column is not None:
                # Checked for every rule, whoever runs it: a rule that cannot apply is refused before any row.
                if check.column not in types:
                    raise RuleCompileError(f"check {check.name}: column {check.column!r} is not in the landed data")
                if isinstance(rule, BetweenRule | MinRule | MaxRule) and not _is_ordered(types[check.column]):
                    raise RuleCompileError(
                        f"check {check.name}: {rule.kind} needs a numeric column, but {check.column} is "
                        f"{types[check.column]}; declare its type (e.g. type: double)"
                    )
                if isinstance(rule, AcceptedValuesRule):
                    rule = rule.model_copy(
                        update={"accepted_values": _typed_values(check, rule.accepted_values, types[check.column])}
                    )
            if check.name in in_sql_names:
                continue
            if isinstance(rule, PanderaRule):
                self._single.append((check, single_check_schema(check, pandera_declared_check(check, workspace_root))))
            else:
                by_pandera.append((check, rule))
        self.active = bool(self._single)
        if not by_pandera:
            self.schema = None
            return  # every row rule runs in the landing query: pandera (and polars) need not even be imported
        self.active = True
        for check, rule in by_pandera:
            if check.column is not None:
                column = columns.setdefault(check.column, {"checks": [], "nullable": True})
                if isinstance(rule, NotNullRule):
                    column["nullable"] = False
                    self._not_null[check.column] = check
                    continue
                self._by_column_check[(check.column, len(column["checks"]))] = check
                column["checks"].append(self._column_check(rule, check.name))
            elif isinstance(rule, ExpressionRule):
                self._by_frame_check[len(frame_checks)] = check
                frame_checks.append(_expression_check(rule.expression, check.name, list(types)))
            elif isinstance(rule, CustomRule):
                function = load_custom_function(rule.custom.function, workspace_root)
                self._by_frame_check[len(frame_checks)] = check
                frame_checks.append(_custom_check(function, check.name))
        pa = _pandera()
        self.schema = pa.DataFrameSchema(
            {name: pa.Column(None, checks=c["checks"], nullable=c["nullable"]) for name, c in columns.items()},
            checks=frame_checks,
            strict=False,
            coerce=False,
        )

    @staticmethod
    def _column_check(rule: Any, name: str) -> pa.Check:
        spec = pandera_check(rule)
        if spec is None:
            raise RuleCompileError(f"rule {rule.kind} is not a row rule")
        return getattr(_pandera().Check, spec.name)(**spec.statistics, name=name)

    def validate(self, batch: pa_arrow.RecordBatch) -> BatchVerdict:
        """What the rules say of `batch` (its `FAILURES_COLUMN`, if any, holds the landing query's verdicts)."""
        verdict = BatchVerdict()
        if batch.num_rows == 0:
            return verdict
        if FAILURES_COLUMN in batch.schema.names:
            self._read_sql_failures(batch, verdict)
            batch = batch.drop_columns([FAILURES_COLUMN])
        if self.active:
            self._run_pandera(batch, verdict)
        for failures in verdict.error_rows.values():
            failures.sort(key=lambda failure: self._order.get(failure[0], 0))
        return verdict

    def _read_sql_failures(self, batch: pa_arrow.RecordBatch, verdict: BatchVerdict) -> None:
        bits = batch.column(FAILURES_COLUMN)
        if not self.in_sql.checks or not (pc.max(bits).as_py() or 0):
            return  # the usual case: no row fails any rule
        for bit, check in enumerate(self.in_sql.checks):
            rows = pc.indices_nonzero(pc.not_equal(pc.bit_wise_and(bits, pa_arrow.scalar(1 << bit)), 0))
            if not len(rows):
                continue
            assert check.column is not None
            column = batch.column(check.column)
            if check.severity == "error":  # every failing row is quarantined with its value
                self._record(verdict, check, zip(rows.to_pylist(), column.take(rows).to_pylist(), strict=True))
                continue
            # A warn rule lands its rows: count them all, but read values only until the sample is full.
            verdict.failing[check.name] += len(rows)
            sample = verdict.samples.setdefault(check.name, [])
            for start in range(0, len(rows), 256):
                for value in column.take(rows.slice(start, 256)).to_pylist():
                    if len(sample) < SAMPLE_SIZE and value not in sample:
                        sample.append(str(value))
                if len(sample) >= SAMPLE_SIZE:
                    break

    @staticmethod
    def _record(verdict: BatchVerdict, check: DeclaredCheck, cases: Any) -> None:
        """Failing (row, value) pairs of one check, into the verdict: counts, samples, rows to quarantine."""
        sample = verdict.samples.setdefault(check.name, [])
        for index, value in cases:
            verdict.failing[check.name] += 1
            if len(sample) < SAMPLE_SIZE and value not in sample:
                sample.append(str(value))
            if check.severity == "error":
                message = f"{check.description}, got {value}"
                verdict.error_rows.setdefault(int(index), []).append((check.name, message))

    def _run_pandera(self, batch: pa_arrow.RecordBatch, verdict: BatchVerdict) -> None:
        import polars as pl  # lazy: 0.5 s, only batches with pandera rules use it

        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        for check, schema in self._single:
            self._run_single(check, schema, frame, verdict)
        if self.schema is None:
            return
        try:
            self.schema.validate(frame, lazy=True)
            return
        except _pandera().errors.SchemaErrors as exc:
            cases = exc.failure_cases
        for case in cases.iter_rows(named=True):
            check = self._check_of(case)
            if check is None:
                continue
            if case["index"] is None:
                # pandera reports a check that raised (a custom function's error, a type mismatch) as a failure
                # without a row: let no row through unchecked.
                reason = str(case["failure_case"]).splitlines()[0]
                raise RuleCompileError(f"check {check.name} could not run on {check.column or 'the rows'}: {reason}")
            self._record(verdict, check, [(case["index"], case["failure_case"])])

    def _run_single(self, check: DeclaredCheck, schema: Any, frame: pl.DataFrame, verdict: BatchVerdict) -> None:
        try:
            schema.validate(frame, lazy=True)
            return
        except _pandera().errors.SchemaErrors as exc:
            cases = exc.failure_cases
        for case in cases.iter_rows(named=True):
            if case["index"] is not None:
                self._record(verdict, check, [(case["index"], case["failure_case"])])
            elif case["failure_case"] is False:  # one answer for the batch, as a custom function may give
                self._record(verdict, check, [(i, False) for i in range(frame.height)])
            else:
                reason = str(case["failure_case"]).splitlines()[0]
                raise RuleCompileError(f"check {check.name} could not run on {check.column or 'the rows'}: {reason}")

    def _check_of(self, case: dict[str, Any]) -> DeclaredCheck | None:
        if case["check"] == "not_nullable":
            return self._not_null.get(case["column"])
        if case["schema_context"] == "DataFrameSchema":
            return self._by_frame_check.get(case["check_number"])
        return self._by_column_check.get((case["column"], case["check_number"]))


def row_json(batch: pa_arrow.RecordBatch, index: int) -> str:
    row = batch.slice(index, 1).to_pylist()[0]
    return json.dumps(row, default=str)
