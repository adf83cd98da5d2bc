"""The field types every YAML kind shares (names, owners, schedules, text), each with its one validator.

Source, use-case, KPI and model specs build on these, so a name or an e-mail is judged the same way in every file.
"""

from __future__ import annotations

import re
from typing import Annotated

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict

IDENTIFIER_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SCHEDULE_MACROS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "manual"}


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


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


Identifier = Annotated[str, AfterValidator(_identifier)]
TableName = Annotated[str, AfterValidator(_table_name)]
Email = Annotated[str, AfterValidator(_email)]
Schedule = Annotated[str, AfterValidator(_schedule)]
Text = Annotated[str, AfterValidator(_not_blank)]


def is_table_name(value: str) -> bool:
    """A name usable as a folder, table prefix and Dagster group: lower_snake_case without '__'."""
    return bool(IDENTIFIER_RE.match(value)) and "__" not in value


class Spec(BaseModel):
    """A section of a YAML spec: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
