"""The source YAML format (`usecases/<uc>/sources/*.yaml`), as typed pydantic models.

Parsing only: no I/O here. Secrets are kept as `${VAR}` references and resolved at run time by the
connectors, so a parsed spec (or its dump) never holds a secret value.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from foundation.specs.rules import ColumnRule, TableRule

IDENTIFIER_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SCHEDULE_MACROS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "manual"}

# Column names that usually hold personal data: they must say `pii: true` or `pii: false` explicitly.
PII_NAME_RE = re.compile(
    r"(e_?mail|phone|mobile|first_?name|last_?name|full_?name|surname|address|street|"
    r"birth|ssn|passport|iban|license_?plate|licence_?plate|ip_?addr|national_id)"
)

# DuckDB types a column may declare; `decimal(p,s)` is accepted too.
COLUMN_TYPES = {
    "varchar": "VARCHAR",
    "string": "VARCHAR",
    "text": "VARCHAR",
    "integer": "INTEGER",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "smallint": "SMALLINT",
    "double": "DOUBLE",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
}
DECIMAL_RE = re.compile(r"^decimal\((\d{1,2}),\s*(\d{1,2})\)$")


def _identifier(value: str) -> str:
    if not IDENTIFIER_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lower_snake_case (a letter, then letters, digits or "
            "underscores, at most 63 characters), so it is safe as a table, column and folder name"
        )
    return value


def _table_name(value: str) -> str:
    _identifier(value)
    if "__" in value:
        raise ValueError(
            f"{value!r} contains '__', which the lakehouse reserves to join names (<usecase>__<source>, "
            "<source>__quarantine); use a single underscore"
        )
    return value


def _email(value: str) -> str:
    if not EMAIL_RE.match(value):
        raise ValueError(f"{value!r} is not an e-mail address: the owner is a person or team mailbox")
    return value


def _schedule(value: str) -> str:
    if value in SCHEDULE_MACROS:
        return value
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(
            f"{value!r} is not a 5-field cron expression (e.g. '0 * * * *' hourly, '0 6 * * *' daily at 06:00), "
            f"nor one of {sorted(SCHEDULE_MACROS)}"
        )
    return value


def _column_type(value: str) -> str:
    lowered = value.strip().lower()
    if lowered in COLUMN_TYPES or DECIMAL_RE.match(lowered):
        return lowered
    raise ValueError(f"unknown column type {value!r}; use one of {sorted(COLUMN_TYPES)} or decimal(p,s)")


def _relative_or_absolute_path(value: str) -> str:
    if not value.strip():
        raise ValueError("the path is empty")
    parts = value.replace("\\", "/").split("/")
    if ".." in parts and not value.startswith("/"):
        raise ValueError(f"{value!r} climbs out of the workspace with '..'; use a path inside it or an absolute path")
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
TableName = Annotated[str, AfterValidator(_table_name)]
Email = Annotated[str, AfterValidator(_email)]
Schedule = Annotated[str, AfterValidator(_schedule)]
ColumnType = Annotated[str, AfterValidator(_column_type)]
PathPattern = Annotated[str, AfterValidator(_relative_or_absolute_path)]


def duckdb_type(column_type: str) -> str:
    """The DuckDB SQL type of a declared column type."""
    match = DECIMAL_RE.match(column_type)
    if match:
        return f"DECIMAL({match.group(1)},{match.group(2)})"
    return COLUMN_TYPES[column_type]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ColumnSpec(Spec):
    name: Identifier = Field(description="Column name in the lakehouse (lower_snake_case).")
    from_: str | None = Field(None, alias="from", description="Raw column name in the source, when it differs.")
    type: ColumnType | None = Field(None, description="Column type; omitted means inferred from the data.")
    required: bool = Field(False, description="Rows with a null here are invalid.")
    pii: bool | None = Field(None, description="Personal data: hashed at ingestion unless `pii_handling: keep`.")
    pii_handling: Literal["hash", "keep", "drop"] = Field(
        "hash", description="What ingestion does with a PII column: hash (default), keep, or drop."
    )
    format: str | None = Field(None, description="strptime format for date/timestamp values, e.g. '%d/%m/%Y %H:%M'.")
    description: str | None = None
    checks: list[ColumnRule] = Field(default_factory=list, description="Column rules: see docs/quality.md.")

    @model_validator(mode="after")
    def _pii_declared(self) -> ColumnSpec:
        # Checked here, not on the source, so that the error points at the column's own line.
        if self.pii is None and PII_NAME_RE.search(self.name):
            raise ValueError(
                f"column {self.name!r} looks like personal data: declare pii: true (hashed at ingestion) or pii: false"
            )
        return self

    @model_validator(mode="after")
    def _no_value_rules_on_hashes(self) -> ColumnSpec:
        # A hashed PII column holds digests: a range, list or pattern rule would fail on every row.
        if self.pii and self.pii_handling == "hash":
            value_rules = [
                r.kind for r in self.checks if r.kind in ("between", "min", "max", "accepted_values", "regex")
            ]
            if value_rules:
                raise ValueError(
                    f"column {self.name!r} is hashed PII, so {', '.join(value_rules)} cannot apply to its values; "
                    "keep not_null/unique, or set pii_handling: keep"
                )
        return self

    @property
    def raw_name(self) -> str:
        return self.from_ or self.name


class _FileExtract(Spec):
    path: PathPattern | list[PathPattern] = Field(
        description="File, glob or list of them; relative paths are relative to the workspace root."
    )

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)


class CsvExtract(_FileExtract):
    type: Literal["csv"]
    delimiter: str = Field(",", min_length=1, max_length=1)
    header: bool = Field(True, description="First line holds the column names.")
    column_names: list[str] | None = Field(None, description="Column names of a headerless file, in order.")
    encoding: Literal["utf-8", "utf-16", "latin-1"] = Field("utf-8", description="A UTF-8 BOM is always accepted.")
    quote: str = Field('"', max_length=1)
    escape: str = Field('"', max_length=1)
    skip_rows: int = Field(0, ge=0, description="Lines to skip before the header.")
    null_values: list[str] = Field(default_factory=lambda: [""], description="Strings read as null.")

    @model_validator(mode="after")
    def _headerless_needs_names(self) -> CsvExtract:
        if not self.header and not self.column_names:
            raise ValueError("a headerless CSV (header: false) needs column_names: [...] in file order")
        return self


class ParquetExtract(_FileExtract):
    type: Literal["parquet"]


class JsonExtract(_FileExtract):
    type: Literal["json", "ndjson"]


class DeltaExtract(Spec):
    type: Literal["delta"]
    path: PathPattern = Field(description="Delta table folder or URI.")
    version: int | None = Field(None, ge=0, description="Read this version instead of the latest.")

    @property
    def paths(self) -> list[str]:
        return [self.path]


ExtractSpec = Annotated[CsvExtract | ParquetExtract | JsonExtract | DeltaExtract, Field(discriminator="type")]


class IncrementalSpec(Spec):
    cursor: Identifier | None = Field(None, description="Only rows whose cursor is above the last landed value.")
    new_files_only: bool = Field(False, description="Skip files already landed (always on in append mode).")

    @model_validator(mode="after")
    def _one_strategy(self) -> IncrementalSpec:
        if self.cursor is None and not self.new_files_only:
            raise ValueError("say how to load incrementally: cursor: <column> and/or new_files_only: true")
        return self


class LoadSpec(Spec):
    mode: Literal["append", "replace", "merge"] = "append"
    primary_key: list[Identifier] = Field(default_factory=list)
    incremental: IncrementalSpec | None = None

    @model_validator(mode="after")
    def _merge_needs_key(self) -> LoadSpec:
        if self.mode == "merge" and not self.primary_key:
            raise ValueError("mode: merge upserts on a key: add primary_key: [column, ...]")
        if self.mode == "replace" and self.incremental is not None:
            raise ValueError("mode: replace reloads everything: remove incremental, or use append/merge")
        return self


class SourceSpec(Spec):
    """One source of a use case: where to extract, how to load, which columns and rules."""

    name: TableName = Field(description="Source name; the bronze table is <usecase>/bronze/<name>.")
    description: str = Field(min_length=10, description="What the data is, for people browsing the catalogue.")
    owner: Email = Field(description="Who answers for this source (mandatory metadata).")
    schedule: Schedule = Field(description="Refresh plan: a cron expression, @daily/@hourly..., or 'manual'.")
    extract: ExtractSpec
    load: LoadSpec = Field(default_factory=LoadSpec)
    columns: list[ColumnSpec] = Field(default_factory=list, description="Omit to infer the schema.")
    checks: list[TableRule] = Field(default_factory=list, description="Table rules: see docs/quality.md.")
    on_invalid_rows: Literal["quarantine", "fail", "drop-with-count"] = "quarantine"
    max_invalid_percent: float = Field(100.0, ge=0, le=100, description="Above this share of invalid rows, fail.")
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        names = [c.name for c in self.columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"columns declared twice: {', '.join(duplicates)}")
        if self.columns:
            declared = set(names)
            keys = list(self.load.primary_key)
            if self.load.incremental and self.load.incremental.cursor:
                keys.append(self.load.incremental.cursor)
            missing = [k for k in keys if k not in declared]
            if missing:
                raise ValueError(f"load refers to undeclared columns: {', '.join(missing)}; declare them in columns")
        return self

    @model_validator(mode="after")
    def _delta_append_needs_cursor(self) -> SourceSpec:
        # A Delta source has no files to remember: appending it again would land every row twice.
        incremental = self.load.incremental
        if (
            isinstance(self.extract, DeltaExtract)
            and self.load.mode == "append"
            and not (incremental and incremental.cursor)
        ):
            raise ValueError(
                "a delta extract in append mode needs incremental: {cursor: <column>} (else every run lands the "
                "whole table again); or use mode: replace or merge"
            )
        return self

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)
