"""Platform settings: `foundation.yaml` at the workspace root, overridable by environment variables.

Every embedded default keeps its state under one git-ignored folder of the workspace (`.foundation/`).
An environment variable overrides a key: `FOUNDATION_LAKEHOUSE__ROOT=/data/lake` sets `lakehouse.root`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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


class DbtSettings(_Section):
    project_dir: str = "dbt_project"
    target: str = "duckdb"


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8000
    open: bool = Field(False, description="Serve without API keys (only for a demo on localhost).")
    max_batch_size: int = Field(1000, ge=1, description="Most rows one predict/invocations request may carry.")
    max_body_bytes: int = Field(4_194_304, ge=1024, description="Largest request body accepted (413 beyond).")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS (none: CORS off).")


class IngestSettings(_Section):
    batch_rows: int = Field(122_880, description="Rows per Arrow batch streamed from readers to Delta.")
    pii_salt: str = Field("", description="Salt mixed into hashed PII values; set it from the environment.")


class FoundationSettings(BaseSettings):
    """All settings of one workspace. Relative paths are relative to the workspace root."""

    model_config = SettingsConfigDict(env_prefix="FOUNDATION_", env_nested_delimiter="__", extra="forbid")

    state_dir: str = Field(STATE_DIR, description="Folder for all embedded state (git-ignored).")
    lakehouse: LakehouseSettings = Field(default_factory=LakehouseSettings)
    duckdb: DuckDBSettings = Field(default_factory=DuckDBSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    dbt: DbtSettings = Field(default_factory=DbtSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)

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


def read_settings_file(workspace: Path) -> dict[str, Any]:
    path = workspace / SETTINGS_FILE
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the settings file must be a mapping of sections (lakehouse:, duckdb:, ...)")
    return data


def load_settings(workspace: Path) -> FoundationSettings:
    """Settings of the workspace: defaults < foundation.yaml < FOUNDATION_* environment variables."""
    return FoundationSettings(**read_settings_file(workspace))
