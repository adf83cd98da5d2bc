"""The phase of a use case, derived from what exists (never from what anyone declares).

The rule (docs/usecases.md), over `Evidence` gathered from the workspace:
- ideation: no source of the use case has landed data yet;
- sprint0: data landed in bronze, but no dbt model of the use case is built (no gold snapshot);
- development: models built, but the deliverable is not complete (a declared model spec without a champion)
  or no refresh plan is declared (every source and model schedule is `manual`);
- industrialisation: deliverable complete and a refresh plan declared, but none of its schedules runs;
- run: at least one of its schedules is running in the Dagster instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Evidence:
    sources: int = 0
    sources_landed: int = 0
    models_built: int = 0
    model_specs: int = 0
    champions: int = 0
    schedules: list[str] = field(default_factory=list)  # declared schedule names (Dagster's names)
    schedules_running: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "sources": self.sources,
            "sources_landed": self.sources_landed,
            "models_built": self.models_built,
            "model_specs": self.model_specs,
            "champions": self.champions,
            "schedules": len(self.schedules),
            "schedules_running": len(self.schedules_running),
        }


def phase_of(evidence: Evidence) -> str:
    if evidence.sources_landed == 0:
        return "ideation"
    if evidence.models_built == 0:
        return "sprint0"
    if evidence.champions < evidence.model_specs or not evidence.schedules:
        return "development"
    if not evidence.schedules_running:
        return "industrialisation"
    return "run"
