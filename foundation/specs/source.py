"""The source YAML format (`usecases/<uc>/sources/*.yaml`), as typed pydantic models.

Parsing only: no I/O here. Secrets are kept as `${VAR}` references and resolved at run time by the
connectors, so a parsed spec (or its dump) never holds a secret value.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from foundation.specs.fields import Email, Identifier, Schedule, Spec, TableName
from foundation.specs.partitions import PartitionsSpec
from foundation.specs.rules import ColumnRule, ReferencesRule, TableRule

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


ColumnType = Annotated[str, AfterValidator(_column_type)]
PathPattern = Annotated[str, AfterValidator(_relative_or_absolute_path)]


def duckdb_type(column_type: str) -> str:
    """The DuckDB SQL type of a declared column type."""
    match = DECIMAL_RE.match(column_type)
    if match:
        return f"DECIMAL({match.group(1)},{match.group(2)})"
    return COLUMN_TYPES[column_type]


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


# --- rest_api extract (keys follow dlt's rest_api vocabulary) ---------------------------------------------------------


def _env_reference(value: str) -> str:
    # Credentials come only from the environment: a literal would end up in git and in logs.
    if not re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*\}", value.strip()):
        raise ValueError("a credential must be an environment reference like '${API_TOKEN}', not a literal value")
    return value.strip()


EnvReference = Annotated[str, AfterValidator(_env_reference)]


class BearerAuth(Spec):
    type: Literal["bearer"]
    token: EnvReference = Field(description="`${VAR}` holding the token; sent as `Authorization: Bearer <token>`.")


class ApiKeyAuth(Spec):
    type: Literal["api_key"]
    name: str = Field("Authorization", description="Header or query parameter name, e.g. X-API-Key or api_key.")
    api_key: EnvReference = Field(description="`${VAR}` holding the key.")
    location: Literal["header", "query"] = "header"


class HttpBasicAuth(Spec):
    type: Literal["http_basic"]
    username: str = Field(description="User name (literal or `${VAR}`).")
    password: EnvReference = Field(description="`${VAR}` holding the password.")


RestAuth = Annotated[BearerAuth | ApiKeyAuth | HttpBasicAuth, Field(discriminator="type")]


class SinglePagePaginator(Spec):
    type: Literal["single_page"]


class PageNumberPaginator(Spec):
    type: Literal["page_number"]
    page_param: str = Field("page", description="Query parameter carrying the page number.")
    base_page: int = Field(0, description="Number of the first page on the API's side (0 or 1).")
    total_path: str | None = Field(None, description="Where the total number of pages sits, e.g. total_pages.")
    maximum_page: int | None = Field(None, description="Stop at this page number.")
    has_more_path: str | None = Field(None, description="Where a boolean 'more pages' flag sits.")
    stop_after_empty_page: bool = Field(True, description="An empty page ends the pagination.")


class OffsetPaginator(Spec):
    type: Literal["offset"]
    limit: int = Field(gt=0, description="Records asked for per page.")
    offset_param: str = "offset"
    limit_param: str = "limit"
    offset: int = Field(0, ge=0, description="Offset of the first page.")
    total_path: str | None = Field(None, description="Where the total number of records sits, e.g. total.")
    maximum_offset: int | None = None
    has_more_path: str | None = None
    stop_after_empty_page: bool = True


class CursorPaginator(Spec):
    type: Literal["cursor"]
    cursor_path: str = Field("cursors.next", description="Where the next page's cursor sits in the response body.")
    cursor_param: str = Field("cursor", description="Query parameter that sends it back.")


class JsonLinkPaginator(Spec):
    type: Literal["json_link"]
    next_url_path: str = Field("next", description="Where the next page's URL sits in the response body.")


class HeaderLinkPaginator(Spec):
    type: Literal["header_link"]
    links_next_key: str = Field("next", description="The rel of the `Link` header entry to follow.")


RestPaginator = Annotated[
    SinglePagePaginator
    | PageNumberPaginator
    | OffsetPaginator
    | CursorPaginator
    | JsonLinkPaginator
    | HeaderLinkPaginator,
    Field(discriminator="type"),
]


class ResolveParam(Spec):
    type: Literal["resolve"]
    field: str = Field(description="Field of each parent record whose value fills this parameter.")


class RestIncremental(Spec):
    cursor: Identifier = Field(description="The landed column whose newest value is sent on the next run.")
    param: str = Field(description="Query parameter that carries it, e.g. updated_since.")
    initial_value: str | None = Field(None, description="Sent on the first run (else the parameter is omitted).")


class RestRetries(Spec):
    max_attempts: int = Field(5, ge=1, le=20, description="Tries per request, on 5xx, 429, timeouts, lost connections.")
    backoff_factor: float = Field(1.0, ge=0, description="Exponential backoff multiplier, in seconds.")
    max_delay: float = Field(60.0, ge=0, description="Longest wait between tries (also caps Retry-After).")


class RestEndpoint(Spec):
    path: str = Field(description="Path relative to base_url (or a full URL); {name} is filled by a resolve param.")
    params: dict[str, str | int | float | bool | ResolveParam] = Field(default_factory=dict)
    data_selector: str | None = Field(
        None, description="Where the records sit in each response, e.g. data or results.items ($ = the body itself)."
    )
    paginator: RestPaginator | None = Field(None, description="Omitted: a single page.")


class RestApiExtract(RestEndpoint):
    type: Literal["rest_api"]
    base_url: str = Field(description="API root, e.g. https://api.example.com/v1/ or ${API_URL}.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers (values may be `${VAR}`).")
    auth: RestAuth | None = None
    incremental: RestIncremental | None = None
    parent: RestEndpoint | None = Field(
        None, description="Parent list endpoint: the child path is fetched once per parent record (resolve params)."
    )
    include_from_parent: list[str] = Field(
        default_factory=list, description="Parent fields copied into each child record as parent_<field>."
    )
    max_pages: int = Field(10_000, ge=1, description="Bound on pages per endpoint: more is an error, not a hang.")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for a response before a retry.")
    retries: RestRetries = Field(default_factory=RestRetries)
    help: str | None = Field(
        None, description="Shown with connection and missing-variable errors: how to start or reach this API."
    )

    @property
    def paths(self) -> list[str]:
        """No files to match: the records are fetched and staged at load time."""
        return []

    @model_validator(mode="after")
    def _resolve_needs_parent(self) -> RestApiExtract:
        resolved = [k for k, v in self.params.items() if isinstance(v, ResolveParam)]
        if self.parent is None and (resolved or self.include_from_parent):
            raise ValueError("resolve params and include_from_parent need a parent: {path: ..., data_selector: ...}")
        if self.parent is not None and not resolved:
            raise ValueError(
                "a parent endpoint needs a param of type resolve, e.g. params: {id: {type: resolve, field: id}}"
            )
        if self.parent is not None and any(isinstance(v, ResolveParam) for v in self.parent.params.values()):
            raise ValueError("the parent endpoint cannot itself resolve params (one level of parent/child)")
        return self


# --- sql and html_table extracts -------------------------------------------------------------------------------------

SQL_URL_RE = re.compile(r"^(postgresql|postgres|sqlite)://", re.I)
SQL_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
ENV_REFERENCE_RE = re.compile(r"\$\{[A-Z_][A-Z0-9_]*\}")
URL_PASSWORD_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]*:([^/@]*)@", re.I)


def _sql_url(value: str) -> str:
    value = value.strip()
    password = URL_PASSWORD_RE.match(value)
    if password and not ENV_REFERENCE_RE.fullmatch(password.group(1)):
        raise ValueError(
            "the connection URL holds a literal password: put the whole URL in an environment variable and write "
            "url: ${FLEET_DB_URL} (or the password alone: postgresql://user:${DB_PASSWORD}@host/db)"
        )
    if not ENV_REFERENCE_RE.search(value) and not SQL_URL_RE.match(value):
        raise ValueError(
            f"{value!r} is not a supported connection URL: use postgresql://user:${{PASSWORD}}@host:5432/db, "
            "sqlite:///relative/path.db, sqlite:////absolute/path.db, or ${VAR} holding one of them"
        )
    return value


class SqlExtract(Spec):
    """A table or a query of a database (SQLite, PostgreSQL), streamed in batches through ADBC."""

    type: Literal["sql"]
    url: Annotated[str, AfterValidator(_sql_url)] = Field(
        description="Connection URL, normally `${VAR}`: postgresql://user:password@host:5432/db, or "
        "sqlite:///path.db (relative to the workspace; sqlite:////abs/path.db for an absolute path)."
    )
    table: str | None = Field(None, description="Table or view to read, optionally schema-qualified (public.repairs).")
    query: str | None = Field(None, description="A SELECT to run instead of a table (no trailing semicolon needed).")
    connect_timeout: int = Field(10, ge=1, le=600, description="Seconds to wait for a PostgreSQL server to answer.")
    cursor_column: str | None = Field(
        None,
        description="Database column compared with the last landed cursor in the WHERE clause; defaults to the "
        "raw name (from:) of load.incremental.cursor.",
    )

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlExtract:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table: <name> or query: <SELECT ...>")
        if self.table is not None and not SQL_TABLE_RE.match(self.table):
            raise ValueError(
                f"table {self.table!r} is not a plain table name: use name or schema.name (letters, digits, _), "
                "or write a query: instead"
            )
        if self.query is not None and not self.query.strip().rstrip(";").strip():
            raise ValueError("query is empty")
        return self


class HtmlTableExtract(Spec):
    """A table scraped from a web page (http(s) URL or a local file)."""

    type: Literal["html_table"]
    url: str = Field(
        min_length=1,
        description="http(s) URL, `${VAR}`, or a path to an .html file (relative to the workspace).",
    )
    table: int | None = Field(None, ge=0, description="Which table, by position on the page (0 = the first).")
    selector: str | None = Field(None, min_length=1, description="CSS selector of the table, e.g. table#depots.")
    caption: str | None = Field(
        None, min_length=1, description="Text the table's <caption> contains (case and spacing ignored)."
    )
    header_row: int | None = Field(
        0, ge=0, description="Which row holds the column names (0 = the first); null when the table has none."
    )
    column_names: list[str] | None = Field(None, description="Column names, in order, for a table without a header.")
    spans: Literal["repeat", "refuse"] = Field(
        "repeat", description="colspan/rowspan cells: repeat the value into every cell they cover, or refuse the page."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="HTTP request headers (values may be `${VAR}`).")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for the page.")
    help: str | None = Field(
        None, description="Shown with connection and missing-variable errors: how to start or reach this page."
    )

    @model_validator(mode="after")
    def _one_locator(self) -> HtmlTableExtract:
        given = [k for k in ("table", "selector", "caption") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"say which table with one of table/selector/caption, not {' and '.join(given)}")
        if self.header_row is None and not self.column_names:
            raise ValueError("a table without a header row (header_row: null) needs column_names: [...] in order")
        return self


ExtractSpec = Annotated[
    CsvExtract | ParquetExtract | JsonExtract | DeltaExtract | RestApiExtract | SqlExtract | HtmlTableExtract,
    Field(discriminator="type"),
]


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
    on_new_files: bool = Field(
        False,
        description="Load when new or changed files match extract.path (a sensor; besides the schedule, or instead "
        "of it with schedule: manual).",
    )

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
    undeclared_columns: Literal["keep", "drop"] = Field(
        "keep",
        description="Columns of the data not declared in `columns`: `keep` lands them as read (snake_case names); "
        "`drop` leaves them out (a trailing delimiter's empty column, extra columns no one uses).",
    )
    line_numbers: bool = Field(
        False,
        description="Add `_line`, the physical line each record starts on in its file (CSV, append/replace "
        "loads): to join back a file whose meaning is its line order. See docs/sources.md.",
    )
    checks: list[TableRule] = Field(default_factory=list, description="Table rules: see docs/quality.md.")
    on_invalid_rows: Literal["quarantine", "fail", "drop-with-count"] = "quarantine"
    max_invalid_percent: float = Field(100.0, ge=0, le=100, description="Above this share of invalid rows, fail.")
    tags: list[str] = Field(default_factory=list)
    partitions: PartitionsSpec | None = Field(
        None, description="Time partitions (daily/hourly/monthly) from a column or the file name: see docs/sources.md."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        names = [c.name for c in self.columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"columns declared twice: {', '.join(duplicates)}")
        if self.undeclared_columns == "drop" and not self.columns:
            raise ValueError("undeclared_columns: drop needs the columns to keep, declared in columns: [...]")
        if self.line_numbers and (
            not isinstance(self.extract, CsvExtract) or self.load.mode == "merge" or self.partitions is not None
        ):
            raise ValueError(
                "line_numbers: true needs a csv extract and load mode append or replace, without partitions "
                "(a merge keeps one row per key, not the file's lines)"
            )
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

    @model_validator(mode="before")
    @classmethod
    def _sql_cursor_column(cls, data: object) -> object:
        # The database filters on its own column name: the raw name of the load cursor, unless the YAML says another.
        if not isinstance(data, dict) or not isinstance(data.get("extract"), dict):
            return data
        extract, load = data["extract"], data.get("load")
        if extract.get("type") != "sql" or extract.get("cursor_column") or not isinstance(load, dict):
            return data
        incremental = load.get("incremental")
        cursor = incremental.get("cursor") if isinstance(incremental, dict) else None
        if not isinstance(cursor, str):
            return data
        columns = data.get("columns") if isinstance(data.get("columns"), list) else []
        declared = next((c for c in columns if isinstance(c, dict) and c.get("name") == cursor), {})
        if declared.get("format"):
            return data  # text in a custom format (dd/mm/yyyy) does not compare in order: the plan filters alone
        raw = declared.get("from") or declared.get("from_") or cursor
        return {**data, "extract": {**extract, "cursor_column": raw}}

    @model_validator(mode="after")
    def _staged_append_needs_cursor(self) -> SourceSpec:
        # A database table or a web page is read whole each time: appending it again would land every row twice.
        incremental = self.load.incremental
        if (
            isinstance(self.extract, SqlExtract | HtmlTableExtract)
            and self.load.mode == "append"
            and not (incremental and incremental.cursor)
        ):
            raise ValueError(
                f"a {self.extract.type} extract in append mode needs incremental: {{cursor: <column>}} (else every "
                "run lands the whole table again); or use mode: replace or merge"
            )
        return self

    @model_validator(mode="after")
    def _rest_incremental_matches_load(self) -> SourceSpec:
        # The value sent is the landed column's newest value, kept by the load: both must name the same column.
        rest = self.extract.incremental if isinstance(self.extract, RestApiExtract) else None
        if rest is not None:
            load_cursor = self.load.incremental.cursor if self.load.incremental else None
            if load_cursor != rest.cursor or self.load.mode == "replace":
                raise ValueError(
                    f"extract.incremental sends the newest {rest.cursor!r} already landed: declare the same cursor "
                    f"in load: {{mode: merge (or append), incremental: {{cursor: {rest.cursor}}}}}"
                )
        return self

    @model_validator(mode="after")
    def _partitions_fit(self) -> SourceSpec:
        # Raised with the location of the offending key, so that `check` points at its line.
        problem = partition_problem(self)
        if problem is not None:
            loc, message = problem
            error = InitErrorDetails(
                type=PydanticCustomError("partitions", message), loc=("partitions", *loc), input=None
            )
            raise ValidationError.from_exception_data(type(self).__name__, [error])
        return self

    @model_validator(mode="after")
    def _new_files_need_files(self) -> SourceSpec:
        if self.load.on_new_files and not isinstance(self.extract, CsvExtract | ParquetExtract | JsonExtract):
            raise ValueError(
                f"load.on_new_files watches files, and a {self.extract.type} extract has none: remove it and use "
                "schedule: '<cron>'"
            )
        return self

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)


PARTITION_COLUMN_TYPES = ("date", "timestamp", "timestamptz")


def partition_problem(spec: SourceSpec) -> tuple[tuple[str, ...], str] | None:
    """What makes a source's partitions unusable (the key at fault under `partitions`, the message), or None."""
    partitions = spec.partitions
    if partitions is None:
        return None
    if spec.load.mode != "replace":
        # A partition load replaces its window: merge and append would keep or duplicate rows of other loads, and
        # an incremental cursor or new_files_only would skip the rows a re-load must read again.
        return (), (
            f"partitions need load: {{mode: replace}} (each partition load replaces exactly its partition), not "
            f"mode: {spec.load.mode}; remove incremental too"
        )
    if spec.load.on_new_files:
        return (), (
            "a partitioned source is loaded per partition (its schedule loads the latest one, foundation backfill a "
            "range): remove load.on_new_files, which would load it whole"
        )
    if partitions.column is not None:
        column = spec.column(partitions.column)
        declared = ", ".join(c.name for c in spec.columns) or "none"
        if column is None:
            return ("column",), (
                f"partition column {partitions.column!r} is not declared in columns: (declared: {declared}); "
                f"add {{name: {partitions.column}, type: timestamp, required: true}} or name a declared column"
            )
        if column.type not in PARTITION_COLUMN_TYPES:
            return ("column",), (
                f"partition column {partitions.column!r} is declared with type {column.type or 'inferred'}: a "
                f"partition column is a {', '.join(PARTITION_COLUMN_TYPES)}; declare its type"
            )
        if not column.required:
            return ("column",), (
                f"partition column {partitions.column!r} must be required: true (a row without a value would "
                "belong to no partition)"
            )
        if column.pii and column.pii_handling != "keep":
            return ("column",), f"partition column {partitions.column!r} is hashed or dropped PII: use another column"
    elif not isinstance(spec.extract, CsvExtract | ParquetExtract | JsonExtract):
        return ("file_name",), (
            f"a {spec.extract.type} extract has no file names to partition by: use column: <timestamp column>"
        )
    return None


def referenced_sources(usecase: str, spec: SourceSpec) -> list[tuple[str, str]]:
    """(usecase, source) of each source a `references` rule of `spec` reads: load those first, so the rule sees
    their current data (Dagster orders its assets by them; `foundation ingest` sorts its loads by them)."""
    found = []
    for rule in spec.checks:
        if isinstance(rule, ReferencesRule):
            target = rule.references.source
            found.append((target.split("/", 1)[0], target.split("/", 1)[1]) if "/" in target else (usecase, target))
    return found
