"""`usecases/<name>/usecase.yaml`: the use case's identity and refresh plan (the qualification sheet comes later)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from foundation.specs.source import Email, Schedule, Spec

UsecaseType = Literal["visualisation", "monitoring", "analytics_prediction", "optimisation", "automation"]


class UsecaseSpec(Spec):
    title: str = Field(min_length=3, description="Human title of the use case.")
    description: str = Field(min_length=10, description="The business question, in one or two sentences.")
    owner: Email = Field(description="Business owner.")
    type: UsecaseType | None = None
    sponsor: Email | None = None
    users: list[str] = Field(default_factory=list, description="Who uses the outcome.")
    phase: Literal["ideation", "sprint0", "development", "industrialisation"] = "development"
    refresh: Schedule | None = Field(None, description="Default refresh of the use case's sources.")
    qualification: dict[str, Any] = Field(default_factory=dict, description="Value/complexity sheet (scored later).")
