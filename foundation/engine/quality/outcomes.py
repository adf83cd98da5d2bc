"""The result of one check on one load: what Dagster shows, what the quality report lists."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    stage: str  # parse | row | load | table
    severity: str  # the severity of this result: error | warn
    passed: bool
    description: str
    failing: int = 0  # failing rows, keys or values
    observed: str = ""  # what was measured, e.g. "age 3h12m" or "0.4% null"
    sample: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.passed:
            return "pass"
        return "fail" if self.severity == "error" else "warn"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


class QualityGateError(ValueError):
    """A load refused by an `error` rule before anything was published."""

    def __init__(self, message: str, outcomes: list[CheckOutcome]) -> None:
        super().__init__(message)
        self.outcomes = outcomes
