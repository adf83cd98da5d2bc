"""Row rules compiled to a pandera schema (polars backend) and run on each Arrow batch in flight.

Arrow batches become polars frames without a copy; pandera runs every check lazily and reports failure cases
with their row index, which is how a failing row is traced back to its rules and quarantined.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa_arrow

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl
    from pandera.api.polars.types import PolarsData

from foundation.quality.checks import DeclaredCheck
from foundation.specs.rules import (
    AcceptedValuesRule,
    BetweenRule,
    CustomRule,
    ExpressionRule,
    MaxRule,
    MinRule,
    NotNullRule,
    RegexRule,
)


def _pandera():
    """pandera (and pandas, which it imports) costs over a second to import: only sources with row rules pay it."""
    # pandera imports pyspark.pandas whenever pyspark is installed (the spark group, for dbt on Spark): seconds of
    # import and a pandas-version warning for nothing, since our rules run on polars. pandera guards every pyspark
    # import with `except ImportError`, so hiding pyspark while pandera loads only skips its Spark integration.
    hidden = {name: sys.modules.get(name) for name in ("pyspark", "pyspark.pandas", "pyspark.sql")}
    if any(module is None for module in hidden.values()):
        for name in hidden:
            sys.modules.setdefault(name, None)  # type: ignore[assignment]  # None in sys.modules = ImportError
    try:
        import pandera.polars
    finally:
        for name, module in hidden.items():
            if module is None:
                sys.modules.pop(name, None)
    return pandera.polars


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
    import polars as pl

    rows = data.lazyframe.select(pl.len()).collect().item()
    if isinstance(result, pl.Series):
        if len(result) != rows:
            raise RuleCompileError(f"the function returned {len(result)} values for {rows} rows")
        return pl.LazyFrame({"check_output": result.cast(pl.Boolean).fill_null(True)})
    return pl.LazyFrame({"check_output": [bool(result)] * rows})


def _custom_check(function: Callable[[pl.DataFrame], Any], name: str) -> pa.Check:
    return _pandera().Check(lambda data: _row_output(data, function(data.lazyframe.collect())), name=name)


def _expression_check(sql: str, name: str, columns: list[str]) -> pa.Check:
    import polars as pl  # like pandera: only sources with row rules pay its import (0.5 s)

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


class RowValidator:
    """The row checks of one source, compiled once per load."""

    def __init__(self, checks: list[DeclaredCheck], schema: pa_arrow.Schema, workspace_root: Path) -> None:
        self.checks = [c for c in checks if c.stage == "row"]
        types = {f.name: str(f.type) for f in schema}
        columns: dict[str, dict[str, Any]] = {}
        frame_checks: list[pa.Check] = []
        self._by_column_check: dict[tuple[str, int], DeclaredCheck] = {}
        self._by_frame_check: dict[int, DeclaredCheck] = {}
        self._not_null: dict[str, DeclaredCheck] = {}
        self.active = bool(self.checks)
        if not self.active:
            return  # no row rules: no pandera schema to build (nor to import)
        for check in self.checks:
            rule = check.rule
            if check.column is not None:
                if check.column not in types:
                    raise RuleCompileError(f"check {check.name}: column {check.column!r} is not in the landed data")
                column = columns.setdefault(check.column, {"checks": [], "nullable": True})
                if isinstance(rule, NotNullRule):
                    column["nullable"] = False
                    self._not_null[check.column] = check
                    continue
                if isinstance(rule, BetweenRule | MinRule | MaxRule) and not _is_ordered(types[check.column]):
                    raise RuleCompileError(
                        f"check {check.name}: {rule.kind} needs a numeric column, but {check.column} is "
                        f"{types[check.column]}; declare its type (e.g. type: double)"
                    )
                if isinstance(rule, AcceptedValuesRule):
                    rule = rule.model_copy(
                        update={"accepted_values": _typed_values(check, rule.accepted_values, types[check.column])}
                    )
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
        match rule:
            case BetweenRule(between=(low, high)):
                return _pandera().Check.in_range(low, high, name=name)
            case MinRule(min=low):
                return _pandera().Check.ge(low, name=name)
            case MaxRule(max=high):
                return _pandera().Check.le(high, name=name)
            case AcceptedValuesRule(accepted_values=values):
                return _pandera().Check.isin(values, name=name)
            case RegexRule(regex=pattern):
                return _pandera().Check.str_matches(pattern, name=name)
        raise RuleCompileError(f"rule {rule.kind} is not a row rule")

    def validate(self, batch: pa_arrow.RecordBatch) -> BatchVerdict:
        verdict = BatchVerdict()
        if not self.active or batch.num_rows == 0:
            return verdict
        import polars as pl

        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        try:
            self.schema.validate(frame, lazy=True)
            return verdict
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
            verdict.failing[check.name] += 1
            value = case["failure_case"]
            sample = verdict.samples.setdefault(check.name, [])
            if len(sample) < SAMPLE_SIZE and value not in sample:
                sample.append(str(value))
            if check.severity == "error":
                message = f"{check.description}, got {value}"
                verdict.error_rows.setdefault(int(case["index"]), []).append((check.name, message))
        return verdict

    def _check_of(self, case: dict[str, Any]) -> DeclaredCheck | None:
        if case["check"] == "not_nullable":
            return self._not_null.get(case["column"])
        if case["schema_context"] == "DataFrameSchema":
            return self._by_frame_check.get(case["check_number"])
        return self._by_column_check.get((case["column"], case["check_number"]))


def row_json(batch: pa_arrow.RecordBatch, index: int) -> str:
    row = batch.slice(index, 1).to_pylist()[0]
    return json.dumps(row, default=str)
