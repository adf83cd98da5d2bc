"""Qualification scores: pure functions of a sheet and the weights of `portfolio:` in foundation.yaml.

Each rating maps to low=0, medium=0.5, high=1. A score is the weighted mean of its criteria, times 100:
value = 100 * sum(w_i * r_i) / sum(w_i) over the value criteria, complexity the same over the complexity criteria.
A sheet with any criterion unrated is not scored (it shows as `unscored` with what is missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.core.settings import PortfolioSettings
from foundation.specs.usecase import LEVELS, QualificationSheet

QUICK_WINS = "quick wins"
STRATEGIC_BETS = "strategic bets"
LOW_HANGING_FRUIT = "low-hanging fruit"
TO_AVOID = "to avoid"
UNSCORED = "unscored"
NO_SHEET = "qualification (the whole sheet)"
# Ranking order of the quadrants: what to do first.
QUADRANTS: tuple[str, ...] = (QUICK_WINS, STRATEGIC_BETS, LOW_HANGING_FRUIT, TO_AVOID, UNSCORED)


@dataclass(frozen=True)
class Scores:
    value: float | None
    complexity: float | None
    quadrant: str
    missing: list[str] = field(default_factory=list)

    @property
    def scored(self) -> bool:
        return self.value is not None and self.complexity is not None


def weighted_score(ratings: dict[str, str | None], weights: dict[str, float]) -> float:
    """0-100: the weighted mean of the ratings (low 0, medium 0.5, high 1). Every rating must be given."""
    total = sum(weights[name] for name in ratings)
    if total == 0:
        return 0.0
    points = sum(weights[name] * (LEVELS[level] - 1) / 2 for name, level in ratings.items() if level is not None)
    return round(100 * points / total, 1)


def quadrant(value: float, complexity: float, threshold: float) -> str:
    """High value (>= threshold) and low complexity (< threshold): quick win; and so on around the two axes."""
    if value >= threshold:
        return QUICK_WINS if complexity < threshold else STRATEGIC_BETS
    return LOW_HANGING_FRUIT if complexity < threshold else TO_AVOID


def score_sheet(sheet: QualificationSheet | None, settings: PortfolioSettings) -> Scores:
    if sheet is None:
        return Scores(None, None, UNSCORED, [NO_SHEET])
    missing = sheet.missing()
    if missing:
        return Scores(None, None, UNSCORED, missing)
    ratings = sheet.ratings()
    value = weighted_score(ratings["value"], settings.value_weights.model_dump())
    complexity = weighted_score(ratings["complexity"], settings.complexity_weights.model_dump())
    return Scores(value, complexity, quadrant(value, complexity, settings.threshold))


def rank_key(quadrant_name: str, value: float | None, complexity: float | None, name: str) -> tuple:
    """Quadrant order first, then the best value-minus-complexity margin, then the name."""
    margin = (value or 0.0) - (complexity or 0.0)
    return (QUADRANTS.index(quadrant_name), -margin, name)
