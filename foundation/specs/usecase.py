"""`usecases/<name>/usecase.yaml`: the use case's identity, refresh plan and qualification sheet.

The qualification sheet rates anticipated value and complexity, each criterion Low/Medium/High (blank: not rated
yet). `foundation.platform.portfolio` scores it with the weights of `portfolio:` in foundation.yaml (docs/usecases.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from foundation.specs.automation import AutomationSpec
from foundation.specs.fields import Email, Schedule, Spec

UsecaseType = Literal["visualisation", "monitoring", "prediction", "optimisation", "automation"]
USECASE_TYPES: tuple[str, ...] = ("visualisation", "monitoring", "prediction", "optimisation", "automation")
PHASES: tuple[str, ...] = ("ideation", "sprint0", "development", "industrialisation", "run")
LEVELS: dict[str, int] = {"low": 1, "medium": 2, "high": 3}


def _type(value: object) -> object:
    # "analytics & prediction" is one type; older sheets spell it analytics_prediction.
    return "prediction" if value == "analytics_prediction" else value


def _level(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


Level = Annotated[Literal["low", "medium", "high"] | None, BeforeValidator(_level)]


class ValueSheet(Spec):
    """Anticipated value: the higher, the better."""

    strategic_alignment: Level = Field(None, description="Alignment with the company's strategic priorities.")
    financial_value: Level = Field(None, description="Financial value (savings, revenue).")
    contribution_to_other_projects: Level = Field(None, description="Contribution to other projects.")
    reuse_of_data_and_algorithms: Level = Field(None, description="Reuse of its data and algorithms elsewhere.")


class DataComplexity(Spec):
    quality_effort: Level = Field(None, description="Effort to bring the data to the quality needed.")
    accessibility_effort: Level = Field(None, description="Effort to get access to the data.")
    novelty: Level = Field(None, description="How new the data is to the platform.")


class EthicsComplexity(Spec):
    privacy_risk: Level = Field(None, description="Risk for personal data.")
    algorithmic_bias: Level = Field(None, description="Risk of unfair outcomes for some groups.")
    explainability: Level = Field(None, description="How much the outcome must be explained.")
    energy: Level = Field(None, description="Energy footprint.")


class OrganisationComplexity(Spec):
    actors_to_align: Level = Field(None, description="How many actors must agree.")
    business_complexity: Level = Field(None, description="Complexity of the business process.")
    interdependencies: Level = Field(None, description="Dependencies on other projects.")
    sponsorship: Level = Field(None, description="Complexity from sponsorship (high: weak or missing sponsor).")
    business_maturity: Level = Field(None, description="Complexity from maturity (high: the business is new to data).")


class TechnicalComplexity(Spec):
    data_science: Level = Field(None, description="Data science difficulty.")
    devops_mlops: Level = Field(None, description="DevOps/MLOps effort.")
    security: Level = Field(None, description="Security requirements.")
    sla: Level = Field(None, description="Service level to guarantee.")


class ComplexitySheet(Spec):
    """Anticipated complexity: every criterion is rated by how much harder it makes the use case (high: harder)."""

    data: DataComplexity = Field(default_factory=DataComplexity)
    ethics_csr: EthicsComplexity = Field(default_factory=EthicsComplexity)
    organisation: OrganisationComplexity = Field(default_factory=OrganisationComplexity)
    technical: TechnicalComplexity = Field(default_factory=TechnicalComplexity)


class QualificationSheet(Spec):
    value: ValueSheet = Field(default_factory=ValueSheet)
    complexity: ComplexitySheet = Field(default_factory=ComplexitySheet)

    def ratings(self) -> dict[str, dict[str, str | None]]:
        """{"value": {criterion: level}, "complexity": {criterion: level}}; criterion names are unique."""
        complexity: dict[str, str | None] = {}
        for group in (self.complexity.data, self.complexity.ethics_csr, self.complexity.organisation):
            complexity.update(group.model_dump())
        complexity.update(self.complexity.technical.model_dump())
        return {"value": self.value.model_dump(), "complexity": complexity}

    def missing(self) -> list[str]:
        """Dotted paths of the criteria not rated yet (as written in the YAML)."""
        paths = [f"value.{k}" for k, v in self.value.model_dump().items() if v is None]
        for group in ("data", "ethics_csr", "organisation", "technical"):
            ratings = getattr(self.complexity, group).model_dump()
            paths += [f"complexity.{group}.{k}" for k, v in ratings.items() if v is None]
        return paths


class UsecaseSpec(Spec):
    title: str = Field(min_length=3, description="Human title of the use case.")
    description: str = Field(min_length=10, description="The business question, in one or two sentences.")
    owner: Email = Field(description="Business owner.")
    type: Annotated[UsecaseType | None, BeforeValidator(_type)] = Field(
        None, description="visualisation, monitoring, prediction (analytics & prediction), optimisation, automation."
    )
    sponsor: Email | None = None
    users: list[str] = Field(default_factory=list, description="Who uses the outcome.")
    phase: Literal["ideation", "sprint0", "development", "industrialisation", "run"] | None = Field(
        None, description="Declared phase; `foundation portfolio` also derives it from what exists and shows both."
    )
    refresh: Schedule | None = Field(None, description="Default refresh of the use case's sources.")
    automation: AutomationSpec | None = Field(
        None, description="When its dbt models, gold and ML assets refresh (default: foundation.yaml's automation:)."
    )
    qualification: QualificationSheet | None = Field(
        None, description="Value/complexity sheet, each criterion low/medium/high (docs/usecases.md)."
    )
