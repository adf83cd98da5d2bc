"""Incidents, pure: what the sensors observed about each (asset, rule) -> which incidents open or resolve.

An incident is one (asset, rule) failing, from the first failing observation to the first passing one after it.
A failing observation of an open incident changes nothing: one alert per incident, not one per tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

Severity = Literal["warning", "error"]
SEVERITY_RANK: dict[str, int] = {"warning": 0, "error": 1}
# How bad each event is: routing rules pick incidents from a least severity up.
EVENT_SEVERITY: dict[str, Severity] = {
    "run_failed": "error",
    "blocking_check_failed": "error",
    "monitoring_check_failed": "warning",
    "kpi_alert": "warning",
    "source_stale": "error",
}

IncidentKey = tuple[str, str]  # (asset, rule)


@dataclass(frozen=True)
class Observation:
    """What a sensor saw about one (asset, rule): failing or not, and the measure behind it."""

    event: str  # one of EVENT_SEVERITY
    usecase: str
    asset: str  # an asset key as a path (`fleet/bronze/telemetry`) or `run:<target>`
    rule: str  # the check, `freshness`, `kpi_alert`, `run`
    failing: bool
    value: str  # the measured value, as people read it
    link: str  # the asset or run page in the Dagster UI
    owners: tuple[str, ...] = ()
    observed_at: datetime | None = None
    ref: str = ""  # what the incident stems from, when the key does not say it (a failed run's id)

    @property
    def key(self) -> IncidentKey:
        return (self.asset, self.rule)

    @property
    def severity(self) -> Severity:
        return EVENT_SEVERITY[self.event]


@dataclass(frozen=True)
class Incident:
    event: str
    usecase: str
    asset: str
    rule: str
    severity: Severity
    owners: tuple[str, ...]
    value: str  # measured when it opened
    link: str
    opened_at: datetime
    resolved_at: datetime | None = None
    resolved_value: str | None = None  # measured when it recovered
    id: int | None = None  # the store's row id
    ref: str = ""  # a failed run's id

    @property
    def key(self) -> IncidentKey:
        return (self.asset, self.rule)

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["owners"] = list(self.owners)
        data["opened_at"] = self.opened_at.isoformat()
        data["resolved_at"] = self.resolved_at.isoformat() if self.resolved_at else None
        return data


@dataclass(frozen=True)
class Transition:
    kind: Literal["opened", "resolved"]
    incident: Incident  # as it is after the transition


def transitions(
    open_incidents: Mapping[IncidentKey, Incident], observations: Iterable[Observation], now: datetime
) -> list[Transition]:
    """Incidents that open (failing, none open) or resolve (passing, one open); the last observation of a key wins."""
    latest: dict[IncidentKey, Observation] = {}
    for observation in observations:
        latest[observation.key] = observation
    result: list[Transition] = []
    for key, seen in latest.items():
        current = open_incidents.get(key)
        when = seen.observed_at or now
        if seen.failing and current is None:
            opened = Incident(
                event=seen.event,
                usecase=seen.usecase,
                asset=seen.asset,
                rule=seen.rule,
                severity=seen.severity,
                owners=seen.owners,
                value=seen.value,
                link=seen.link,
                opened_at=when,
                ref=seen.ref,
            )
            result.append(Transition("opened", opened))
        elif not seen.failing and current is not None:
            result.append(Transition("resolved", replace(current, resolved_at=when, resolved_value=seen.value)))
    return result
