"""Quality rules as declared in the source YAML: `{<rule>: <args>, severity: warn}` mappings, typed.

Column rules sit under a column's `checks:`, table rules under the source's `checks:`. Each mapping holds one
rule key (its name) and optionally `severity` (error by default: failing rows are quarantined, failing loads are
refused, failing checks block downstream assets) and `name` (the Dagster check name, when the default clashes).
`pandera` names any pandera check method, built-in or registered by the user, at the level the YAML says.
Parsing only; `foundation.engine.quality` compiles them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

Severity = Literal["error", "warn"]
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    match = _DURATION_RE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration: write a number and a unit, like 30m, 2h, 1d or 1w")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _duration(value: Any) -> str:
    parse_duration(value)
    return str(value).strip()


Duration = Annotated[str, AfterValidator(_duration)]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Severity = "error"
    name: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,62}$", description="Dagster check name override.")

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if k not in ("severity", "name"))


# --- column rules (under columns[i].checks) -------------------------------------------------------------


class NotNullRule(Rule):
    not_null: Literal[True]


class ColumnUniqueRule(Rule):
    unique: Literal[True]


class BetweenRule(Rule):
    between: tuple[float, float]

    @model_validator(mode="after")
    def _ordered(self) -> BetweenRule:
        if self.between[0] > self.between[1]:
            raise ValueError(f"between: [{self.between[0]}, {self.between[1]}]: the low bound comes first")
        return self


class MinRule(Rule):
    min: float


class MaxRule(Rule):
    max: float


class AcceptedValuesRule(Rule):
    accepted_values: list[str | int | float | bool] = Field(min_length=1)


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"regex {value!r} does not compile: {exc}") from exc
    return value


class RegexRule(Rule):
    regex: Annotated[str, AfterValidator(_regex)]


class MaxNullPercentRule(Rule):
    max_null_percent: float = Field(ge=0, le=100)


# --- table rules (under the source's checks) ------------------------------------------------------------


class FreshnessArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str | None = Field(None, description="Event-time column; without it, the age of the last load.")
    warn_after: Duration | None = None
    error_after: Duration | None = None

    @model_validator(mode="after")
    def _threshold(self) -> FreshnessArgs:
        if self.warn_after is None and self.error_after is None:
            raise ValueError("freshness needs warn_after and/or error_after, e.g. {warn_after: 2h, error_after: 6h}")
        if self.warn_after and self.error_after and parse_duration(self.warn_after) > parse_duration(self.error_after):
            raise ValueError("freshness: warn_after must not be longer than error_after")
        return self


class FreshnessRule(Rule):
    freshness: FreshnessArgs


class CompletenessArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min_rows: int | None = Field(None, ge=0, description="Rows a load must land at least.")
    max_null_percent: dict[str, float] = Field(default_factory=dict, description="Column -> max % of nulls.")


class CompletenessRule(Rule):
    completeness: CompletenessArgs


class TableUniqueRule(Rule):
    unique: list[str] = Field(min_length=1, description="Columns whose combination is unique across the table.")


class RowCountChangeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_percent: float = Field(gt=0, description="Largest change in rows landed against the previous load, in %.")


class RowCountChangeRule(Rule):
    row_count_change: RowCountChangeArgs


class ReferencesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str
    source: str = Field(description="Another source: `name` (same use case) or `usecase/name`.")
    to_column: str | None = Field(None, description="Column in the other source (default: the same name).")


class ReferencesRule(Rule):
    references: ReferencesArgs


class ExpressionRule(Rule):
    expression: str = Field(min_length=1, description="A SQL condition every row meets: `ended_at >= started_at`.")


class SchemaArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    contract: Literal["evolve", "warn", "freeze"] = "evolve"


class SchemaRule(Rule):
    schema_: SchemaArgs = Field(alias="schema")

    @property
    def kind(self) -> str:
        return "schema"


class CustomArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="`package.module:function`.")


class CustomRule(Rule):
    custom: CustomArgs


class PanderaArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    check: str = Field(
        pattern=r"^[A-Za-z_]\w*$",
        description="A pandera check method: a built-in one (`str_length`, `isin`...) or one registered with "
        "`pandera.extensions.register_check_method`.",
    )
    module: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*$",
        description="The module that registers the check, importable from the workspace root "
        "(e.g. `usecases.fleet.lib.checks`).",
    )
    args: dict[str, Any] = Field(default_factory=dict, description="The check's keyword arguments.")
    level: Literal["row", "load", "table"] = Field(
        "row",
        description="row: failing rows are quarantined; load: one failing row refuses the load; table: run on "
        "the whole table after the commit.",
    )


class PanderaRule(Rule):
    pandera: PanderaArgs


COLUMN_RULE_MODELS: dict[str, type[Rule]] = {
    "not_null": NotNullRule,
    "unique": ColumnUniqueRule,
    "between": BetweenRule,
    "min": MinRule,
    "max": MaxRule,
    "accepted_values": AcceptedValuesRule,
    "regex": RegexRule,
    "max_null_percent": MaxNullPercentRule,
    "pandera": PanderaRule,
}
TABLE_RULE_MODELS: dict[str, type[Rule]] = {
    "freshness": FreshnessRule,
    "completeness": CompletenessRule,
    "unique": TableUniqueRule,
    "row_count_change": RowCountChangeRule,
    "references": ReferencesRule,
    "expression": ExpressionRule,
    "schema": SchemaRule,
    "custom": CustomRule,
    "pandera": PanderaRule,
}


def _rule_tag(known: dict[str, type[Rule]]) -> Any:
    def tag(value: Any) -> str | None:
        if isinstance(value, Rule):
            return value.kind
        if not isinstance(value, dict):
            return None
        keys = [k for k in value if k in known]
        return keys[0] if len(keys) == 1 else None  # other keys are then reported as unknown, with a hint

    return tag


def _union(known: dict[str, type[Rule]]) -> Any:
    names = ", ".join(sorted(known))
    members = tuple(Annotated[model, Tag(name)] for name, model in known.items())
    return Annotated[
        members[0] if len(members) == 1 else _make_union(members),
        Discriminator(
            _rule_tag(known),
            custom_error_type="unknown_rule",
            custom_error_message=f"each check is one rule (plus optional severity/name); known rules here: {names}",
        ),
    ]


def _make_union(members: tuple[Any, ...]) -> Any:
    return Union[members]  # noqa: UP007 - built from a tuple at run time


ColumnRule = _union(COLUMN_RULE_MODELS)
TableRule = _union(TABLE_RULE_MODELS)
ALL_RULE_KEYS = set(COLUMN_RULE_MODELS) | set(TABLE_RULE_MODELS)
