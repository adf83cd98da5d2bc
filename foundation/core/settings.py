"""Platform settings: the model of `foundation.yaml` at the workspace root, overridable by environment variables.

Every embedded default keeps its state under one git-ignored folder of the workspace (`.foundation/`).
An environment variable overrides a key: `FOUNDATION_LAKEHOUSE__ROOT=/data/lake` sets `lakehouse.root`.
Reading the file with its profiles is `foundation.core.settings_profiles.load_settings`.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from foundation.specs.automation import AutomationPolicy, AutomationSpec
from foundation.specs.fields import Schedule
from foundation.specs.secrets import ENV_REF_RE

SETTINGS_FILE = "foundation.yaml"
STATE_DIR = ".foundation"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LakehouseSettings(_Section):
    root: str = Field(f"{STATE_DIR}/lakehouse", description="Root of the Delta lakehouse (a folder or an s3:// URI).")
    storage_options: dict[str, str] = Field(default_factory=dict, description="deltalake storage options.")


class DuckDBSettings(_Section):
    path: str = Field(f"{STATE_DIR}/warehouse.duckdb", description="DuckDB database file (dbt's target).")
    memory_limit: str = Field("2GB", description="DuckDB memory limit for ingestion queries (spills beyond).")
    threads: int | None = Field(None, description="DuckDB threads (default: all cores).")


class MlflowSettings(_Section):
    tracking_uri: str = f"sqlite:///{STATE_DIR}/mlflow.db"
    artifact_root: str = f"{STATE_DIR}/mlartifacts"


class DagsterSettings(_Section):
    storage: Literal["sqlite", "postgres"] = Field(
        "sqlite",
        description="Where runs and events are recorded: SQLite under the state folder, or PostgreSQL from the "
        "DAGSTER_PG_HOST/PORT/DB/USER/PASSWORD environment variables (docs/operations.md).",
    )
    home: str | None = Field(
        None, description="A deployed DAGSTER_HOME whose dagster.yaml is used as it is (default: <state_dir>/dagster)."
    )
    runs_per_usecase: int = Field(
        2,
        ge=1,
        description="On PostgreSQL (queued runs): at most this many runs of one use case at once, of the 4 the "
        "queue starts together (docs/operations.md#runs-in-parallel).",
    )


class DbtSettings(_Section):
    project_dir: str = "dbt_project"
    target: str = Field(
        "duckdb",
        description="Engine dbt builds on: `duckdb` (embedded) or `spark` (dbt-spark, `uv sync --group spark`; "
        "docs/operations.md).",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description="Spark settings for `target: spark`, over the local defaults (e.g. spark.master).",
    )


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8000
    open: bool = Field(False, description="Serve without API keys (only for a demo on localhost).")
    max_batch_size: int = Field(1000, ge=1, description="Most rows one predict/invocations request may carry.")
    max_body_bytes: int = Field(4_194_304, ge=1024, description="Largest request body accepted (413 beyond).")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS (none: CORS off).")
    default_model: str | None = Field(
        None,
        description="The model bare `/invocations` scores when several are served and the request names none in "
        "its `X-Model-Name` header (e.g. fleet_maintenance__failure_risk; docs/api.md#invocations).",
    )
    reload_interval_s: float = Field(
        5.0,
        ge=0,
        description="How often the registry is polled for a moved `champion` alias, and score-by-key's feature tables "
        "for a new Delta version (0: neither).",
    )
    fast_routes: bool = Field(
        True,
        description="Serve the scoring routes (predict, invocations) by a lean ASGI handler in front of FastAPI: "
        "the same answers at about half the CPU per request (false: FastAPI's own routes).",
    )
    gil_switch_interval_ms: float = Field(
        0.5,
        gt=0,
        le=100,
        description="How long a thread may hold the GIL while another waits (Python's default: 5 ms). Shorter gives "
        "the event loop the GIL back sooner from model calls and the feedback log's writer (bench/serving.py: p99).",
    )
    batching: bool = Field(True, description="Gather concurrent small requests into one model call.")
    batch_max_wait_ms: float = Field(2.0, ge=0, le=100, description="Longest a request waits for others to join.")
    batch_max_rows: int = Field(128, ge=1, description="Most rows scored in one gathered model call.")
    prediction_log: bool = Field(True, description="Append every prediction to the lakehouse (feedback log).")
    prediction_log_flush_s: float = Field(5.0, gt=0, description="Seconds between feedback-log writes.")
    prediction_log_flush_rows: int = Field(5000, ge=1, description="Rows that trigger a feedback-log write early.")
    prediction_log_queue: int = Field(
        100_000,
        ge=1,
        description="Predictions kept in memory for the next feedback-log write at most (beyond: read back from "
        "the spool; nothing is dropped).",
    )
    prediction_spool_dir: str | None = Field(
        None,
        description="Folder of the prediction log's local spools, one per worker process, where every prediction "
        "is made durable before it is answered (default: <state_dir>/prediction_spool).",
    )
    log_format: Literal["json", "text"] = Field("json", description="`json`: one JSON object per log line.")
    session_ttl_s: int = Field(
        28_800,
        ge=60,
        description="How long a browser login to the pages lasts, in seconds (the session cookie's expiry; "
        "serving/auth_session.py).",
    )
    version_cache_size: int = Field(
        4, ge=1, description="Registry versions kept loaded for `/v1/models/{name}/versions/{v}/predict` (LRU)."
    )
    shadow_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of a champion's requests also scored by its `challenger` alias in shadow (logged, never "
        "returned; 0: off).",
    )
    shadow_queue: int = Field(
        10_000, ge=1, description="Requests waiting for shadow scoring at most (beyond: not shadowed, counted)."
    )
    dagster_ui_url: str | None = Field(
        None, description="The Dagster UI linked from the home page `/` (default: notifications.dagster_url)."
    )
    mlflow_ui_url: str | None = Field(
        None,
        description="The MLflow UI linked from the home page `/` (default: mlflow.tracking_uri when it is an http(s) "
        "tracking server; otherwise no link).",
    )


class IngestSettings(_Section):
    batch_rows: int = Field(122_880, description="Rows per Arrow batch streamed from readers to Delta.")
    pii_salt: str = Field("", description="Salt mixed into hashed PII values; set it from the environment.")
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="Folders and object-store prefixes (s3://bucket/landing) sources may read from, besides the "
        "workspace and the lakehouse, which are always allowed. A path outside them (after resolving symlinks) is "
        "a `foundation check` error and is refused by ingestion (docs/sources.md#where-a-source-may-read).",
    )


class AutomationSettings(_Section):
    """The default `automation:` policy of the workspace's dbt, gold and ML assets (foundation/specs/automation.py),
    and how often the daemon looks."""

    policy: AutomationPolicy = Field(
        "eager", description="eager (refresh when an input changes), on_cron (at the ticks of `cron`), or manual."
    )
    cron: Schedule | None = Field(None, description="The ticks of policy on_cron (e.g. '0 6 * * *').")
    sensor_interval_s: int = Field(30, ge=1, description="Seconds between two evaluations of the automation sensor.")
    file_sensor_interval_s: int = Field(
        30, ge=1, description="Seconds between two looks at the landing folder of an `on_new_files` source."
    )

    @model_validator(mode="after")
    def _valid_policy(self) -> AutomationSettings:
        self.default()  # the same rules as a use case's or a model's automation:
        return self

    def default(self) -> AutomationSpec:
        return AutomationSpec(policy=self.policy, cron=self.cron)


class MaintenanceSettings(_Section):
    """`foundation maintenance`: compaction and vacuum of every Delta table of the lakehouse (docs/operations.md)."""

    retention_hours: int = Field(
        168,
        ge=0,
        description="Files no longer referenced (and part files a crashed write left) are deleted once older than "
        "this; snapshots older than this can no longer be read (time travel). deltalake refuses a value below a "
        "table's delta.deletedFileRetentionDuration (168 h unless set).",
    )
    compact: bool = Field(True, description="Rewrite small files into files of target_file_size (optimize.compact).")
    vacuum: bool = Field(True, description="Delete unreferenced files older than retention_hours (full vacuum).")
    target_file_size: int | None = Field(
        None, ge=1, description="Bytes per compacted file (default: the table's delta.targetFileSize, else 100 MB)."
    )
    tables: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Tables to maintain: patterns on a table's path under the lakehouse root, e.g. bronze/*, "
        "gold/fleet/*, ml/*/*/api_predictions (`*` also crosses folders).",
    )
    exclude: list[str] = Field(default_factory=list, description="Patterns of tables to leave alone.")
    schedule: str | None = Field(
        None,
        description="Cron on which Dagster's daemon runs the foundation_maintenance job, e.g. '0 3 * * 0' (Sundays at "
        "03:00 UTC); unset: run `foundation maintenance` yourself.",
    )


class ValueWeights(_Section):
    strategic_alignment: float = Field(2.0, ge=0)
    financial_value: float = Field(2.0, ge=0)
    contribution_to_other_projects: float = Field(1.0, ge=0)
    reuse_of_data_and_algorithms: float = Field(1.0, ge=0)


class ComplexityWeights(_Section):
    quality_effort: float = Field(2.0, ge=0)
    accessibility_effort: float = Field(1.0, ge=0)
    novelty: float = Field(1.0, ge=0)
    privacy_risk: float = Field(1.0, ge=0)
    algorithmic_bias: float = Field(1.0, ge=0)
    explainability: float = Field(1.0, ge=0)
    energy: float = Field(0.5, ge=0)
    actors_to_align: float = Field(1.0, ge=0)
    business_complexity: float = Field(1.0, ge=0)
    interdependencies: float = Field(1.0, ge=0)
    sponsorship: float = Field(1.0, ge=0)
    business_maturity: float = Field(1.0, ge=0)
    data_science: float = Field(1.0, ge=0)
    devops_mlops: float = Field(1.0, ge=0)
    security: float = Field(1.0, ge=0)
    sla: float = Field(1.0, ge=0)


class PortfolioSettings(_Section):
    """Qualification weights and the quadrant threshold (scores are 0-100; docs/usecases.md gives the formula)."""

    threshold: float = Field(50.0, ge=0, le=100, description="Value/complexity score splitting the quadrants.")
    value_weights: ValueWeights = Field(default_factory=ValueWeights)
    complexity_weights: ComplexityWeights = Field(default_factory=ComplexityWeights)


NotificationEvent = Literal[
    "run_failed", "blocking_check_failed", "monitoring_check_failed", "kpi_alert", "source_stale"
]
NOTIFICATION_EVENTS: tuple[str, ...] = get_args(NotificationEvent)


def _env_reference(value: str | None) -> str | None:
    """A channel's secret must be `${VAR}`: the YAML names where it lives, never holds it."""
    if value is not None and not ENV_REF_RE.fullmatch(value.strip()):
        raise ValueError("must be a ${VAR} reference to an environment variable (a secret is never written in YAML)")
    return value


SecretReference = Annotated[str, AfterValidator(_env_reference)]


class WebhookChannel(_Section):
    """POST a JSON body to a URL (Slack, Teams, Mattermost, an incident tool). The URL carries the webhook's
    credential (Slack's does, in its path), so it is a `${VAR}`."""

    type: Literal["webhook"]
    url: SecretReference = Field(description="${VAR} holding the webhook URL.")
    format: Literal["json", "slack"] = Field(
        "json", description="`json`: the incident as a JSON object; `slack`: Slack's `text` + `blocks` payload."
    )
    timeout_s: float = Field(10.0, gt=0, description="Seconds one POST may take.")


class EmailChannel(_Section):
    """Send through an SMTP server. Recipients: `to`, else the owners declared in the YAML (source, use case)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["email"]
    host: str = Field(description="SMTP server host.")
    port: int = Field(587, ge=1, le=65535)
    from_: str = Field(alias="from", description="Sender address.")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS before logging in.")
    user: SecretReference | None = Field(None, description="${VAR} holding the SMTP user (with password).")
    password: SecretReference | None = Field(None, description="${VAR} holding the SMTP password (with user).")
    to: list[str] = Field(default_factory=list, description="Fixed recipients (default: the incident's owners).")
    timeout_s: float = Field(10.0, gt=0, description="Seconds one SMTP conversation may take.")

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> EmailChannel:
        if (self.user is None) != (self.password is None):
            missing = "password" if self.password is None else "user"
            raise ValueError(f"an SMTP login needs both user and password: add {missing}: ${{SMTP_{missing.upper()}}}")
        return self


NotificationChannel = Annotated[WebhookChannel | EmailChannel, Field(discriminator="type")]


class NotificationRule(_Section):
    """Which incidents go to which channels: every list left out matches everything."""

    channels: list[str] = Field(min_length=1, description="Channel names (keys of notifications.channels).")
    events: list[NotificationEvent] = Field(
        default_factory=list, description=f"Among: {', '.join(get_args(NotificationEvent))}."
    )
    usecases: list[str] = Field(default_factory=list, description="Use cases (folder names) this rule covers.")
    severity: Literal["warning", "error"] = Field("warning", description="Least severity routed.")


class NotificationsSettings(_Section):
    """Alerts: one message per incident (an (asset, rule) that starts failing) and one when it recovers.

    Its `${VAR}`s are resolved when a channel is used, not when the workspace opens (docs/operations.md#alerts)."""

    dagster_url: str = Field(
        "http://127.0.0.1:3000", description="Base URL of the Dagster UI: messages link to the asset or run page."
    )
    channels: dict[str, NotificationChannel] = Field(default_factory=dict, description="Named channels.")
    rules: list[NotificationRule] = Field(
        default_factory=list, description="Routing (none: every incident to every channel)."
    )
    interval_s: int = Field(60, ge=5, description="Seconds between two looks at checks, freshness and KPIs.")
    retry_attempts: int = Field(4, ge=1, le=10, description="Tries per message before the channel is logged down.")
    retry_max_wait_s: float = Field(30.0, gt=0, description="Longest backoff between two tries.")

    @model_validator(mode="after")
    def _rules_name_channels(self) -> NotificationsSettings:
        for i, rule in enumerate(self.rules):
            unknown = [c for c in rule.channels if c not in self.channels]
            if unknown:
                known = ", ".join(self.channels) or "none declared"
                raise ValueError(f"rules[{i}] names unknown channel(s) {', '.join(unknown)} (channels: {known})")
        return self


class FoundationSettings(BaseSettings):
    """All settings of one workspace. Relative paths are relative to the workspace root."""

    model_config = SettingsConfigDict(env_prefix="FOUNDATION_", env_nested_delimiter="__", extra="forbid")

    state_dir: str = Field(STATE_DIR, description="Folder for all embedded state (git-ignored).")
    lakehouse: LakehouseSettings = Field(default_factory=LakehouseSettings)
    duckdb: DuckDBSettings = Field(default_factory=DuckDBSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    dagster: DagsterSettings = Field(default_factory=DagsterSettings)
    dbt: DbtSettings = Field(default_factory=DbtSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    portfolio: PortfolioSettings = Field(default_factory=PortfolioSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)
    automation: AutomationSettings = Field(default_factory=AutomationSettings)
    notifications: NotificationsSettings = Field(default_factory=NotificationsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)
