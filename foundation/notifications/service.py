"""One pass of the alerting: observations -> incident transitions (recorded) -> messages on the routed channels.

A channel that fails (after its retries) is logged once per message and skipped: alerting never stops the sensor,
the daemon or a run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from foundation.notifications.channels import describe_failure, send
from foundation.notifications.incidents import Observation, Transition, transitions
from foundation.notifications.routing import deliveries
from foundation.notifications.store import IncidentStore

if TYPE_CHECKING:
    from foundation.workspace import Workspace

log = logging.getLogger("foundation.notifications")


@dataclass
class PassReport:
    observed: int = 0
    changes: list[Transition] = field(default_factory=list)
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, opened|resolved, asset:rule)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (channel, reason)

    def summary(self) -> str:
        opened = sum(c.kind == "opened" for c in self.changes)
        return (
            f"{self.observed} observation(s): {opened} incident(s) opened, {len(self.changes) - opened} resolved; "
            f"{len(self.sent)} message(s) sent, {len(self.failed)} failed"
        )


def process(
    workspace: Workspace,
    observations: Iterable[Observation],
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> PassReport:
    observations = list(observations)
    report = PassReport(observed=len(observations))
    store = IncidentStore.of_workspace(workspace)
    with store.transaction() as tx:
        report.changes = tx.record(transitions(tx.open(), observations, now or datetime.now(UTC)))
    settings = workspace.settings.notifications
    for change in report.changes:
        incident = change.incident
        for delivery in deliveries(settings, incident):
            try:
                send(delivery, change, settings, environ)
            except Exception as exc:  # never stop the caller: the incident is recorded, the channel is logged
                reason = describe_failure(exc)
                log.warning(
                    "alert channel %r failed after %d tries (%s): %s of %s (%s) not delivered",
                    delivery.channel_name,
                    settings.retry_attempts,
                    reason,
                    change.kind,
                    incident.asset,
                    incident.rule,
                )
                report.failed.append((delivery.channel_name, reason))
            else:
                report.sent.append((delivery.channel_name, change.kind, f"{incident.asset}:{incident.rule}"))
    return report
