"""The `partitions:` block of a source YAML: time partitions taken from a column or from the file name.

Parsing only: which partition a file belongs to is a pure function of its name. The windows themselves (a
partition key -> [start, end)) are Dagster's (`TimeWindowPartitionsDefinition`), built in foundation.dagster_defs.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PartitionGrain = Literal["daily", "hourly", "monthly"]

# How the `date` group of a file name is read when `date_format` is omitted.
DEFAULT_DATE_FORMATS: dict[str, str] = {"daily": "%Y-%m-%d", "hourly": "%Y-%m-%dT%H", "monthly": "%Y-%m"}
DATE_GROUP = "date"
# The landed column that carries the time read from a file's name (file-name partitions): what a partition's
# replace is filtered on, and what dbt models can use as their event time.
FILE_TIME_COLUMN = "_partition_time"


class PartitionsSpec(BaseModel):
    """`partitions: {by: daily, column: ts, start: 2026-01-01}` or `{by: daily, file_name: '...(?P<date>...)...'}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: PartitionGrain = Field(description="One partition per day, hour or month (UTC).")
    start: datetime | date = Field(description="The first partition, e.g. 2026-01-01 (hourly: 2026-01-01T00:00).")
    column: str | None = Field(
        None,
        description="A declared date/timestamp column (required: true): a row belongs to the partition its value "
        "falls in.",
    )
    file_name: str | None = Field(
        None,
        description="A regular expression matched against each file's name (not its folder), with a group named "
        "`date`, e.g. 'telemetry_(?P<date>\\d{4}-\\d{2}-\\d{2})\\.csv': every row of a file belongs to the partition "
        "of the date its name carries.",
    )
    date_format: str | None = Field(
        None,
        description="strptime format of the `date` group; default %Y-%m-%d (daily), %Y-%m-%dT%H (hourly), %Y-%m "
        "(monthly).",
    )

    @field_validator("file_name")
    @classmethod
    def _pattern_has_a_date_group(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ValueError(
                f"{value!r} is not a regular expression ({exc}); write the date part as a named group, e.g. "
                "'telemetry_(?P<date>\\d{4}-\\d{2}-\\d{2})\\.csv' (in YAML, inside single quotes)"
            ) from None
        if DATE_GROUP not in pattern.groupindex:
            raise ValueError(
                f"{value!r} has no group named 'date': write the date part as (?P<date>...), e.g. "
                "'telemetry_(?P<date>\\d{4}-\\d{2}-\\d{2})\\.csv'"
            )
        return value

    @field_validator("date_format")
    @classmethod
    def _format_has_directives(cls, value: str | None) -> str | None:
        if value is not None and "%" not in value:
            raise ValueError(f"{value!r} is not a strptime format: use directives such as %Y-%m-%d or %Y%m%d")
        return value

    @model_validator(mode="after")
    def _one_origin(self) -> PartitionsSpec:
        if (self.column is None) == (self.file_name is None):
            raise ValueError(
                "say where a row's partition comes from: column: <a date/timestamp column> or "
                "file_name: '<regex with (?P<date>...)>', not both"
            )
        if self.date_format is not None and self.file_name is None:
            raise ValueError("date_format reads the file name's date: it needs file_name (or remove it)")
        return self

    @property
    def start_time(self) -> datetime:
        """The first partition's start, as a naive UTC datetime."""
        value = self.start
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value

    @property
    def file_date_format(self) -> str:
        return self.date_format or DEFAULT_DATE_FORMATS[self.by]

    def file_time(self, path: str) -> datetime | None:
        """The time a file's name carries (naive UTC), or None when the name does not match `file_name`.

        Raises ValueError when the name matches but its `date` group does not read with the date format."""
        if self.file_name is None:
            raise ValueError("this source is partitioned by a column, not by file name")
        match = re.fullmatch(self.file_name, PurePosixPath(path.replace("\\", "/")).name)
        if match is None:
            return None
        text = match.group(DATE_GROUP)
        try:
            return datetime.strptime(text, self.file_date_format)
        except ValueError:
            raise ValueError(
                f"{path}: the date {text!r} in its name does not read with the format {self.file_date_format!r}: "
                "fix partitions.date_format (or file_name)"
            ) from None
