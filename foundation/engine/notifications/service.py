"""One pass of the alerting: observations -> incident transitions -> messages queued for the routed channels ->
every queued message delivered (the new ones and those a channel that was down still owes).

A channel that fails (after its retries) keeps its messages queued and is tried again on the next pass, once per
pass while it is down; its outage is logged once when it starts and once when it ends. Alerting never stops the
sensor, the daemon or a run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from foundation.core.settings import EmailChannel, NotificationsSettings
from foundation.engine.notifications.channels import describe_failure, send
from foundation.engine.notifications.incidents import Observation, Transition, transitions
from foundation.engine.notifications.routing import Delivery, deliveries, email_recipients
from foundation.engine.notifications.store import IncidentStore, Outbox, PendingDelivery

if TYPE_CHECKING:
    from foundation.core.workspace import Workspace

log = logging.getLogger("foundation.engine.notifications")

MAX_PENDING_AGE = timedelta(hours=24)  # a message older than this is dropped (logged): it would only confuse


@dataclass
class PassReport:
    observed: int = 0
    changes: list[Transition] = field(default_factory=list)
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, opened|resolved, asset:rule)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (channel, reason)
    pending: int = 0  # still queued after this pass

    def summary(self) -> str:
        opened = sum(c.kind == "opened" for c in self.changes)
        return (
            f"{self.observed} observation(s): {opened} incident(s) opened, {len(self.changes) - opened} resolved; "
            f"{len(self.sent)} message(s) sent, {len(self.failed)} failed, {self.pending} queued"
        )


@dataclass(frozen=True)
class Outcome:
    pending: PendingDelivery
    status: str  # sent | pending | expired | skipped (its channel failed earlier in this pass: not tried)
    error: str | None = None


def as_transition(pending: PendingDelivery) -> Transition:
    """The message as it was due: an `opened` message sent late does not announce a recovery it predates."""
    incident = pending.incident
    if pending.kind == "opened":
        incident = replace(incident, resolved_at=None, resolved_value=None)
    return Transition("opened" if pending.kind == "opened" else "resolved", incident)


def deliver_all(
    due: list[PendingDelivery],
    settings: NotificationsSettings,
    down: Mapping[str, datetime],
    now: datetime,
    environ: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """Send each due message. A channel known to be down gets one try per message (no backoff), and none more in
    this pass once one failed: a dead host costs one timeout per pass, not one per message."""
    failed_now: set[str] = set()
    outcomes = []
    for pending in due:
        channel = settings.channels.get(pending.channel)
        if channel is None or now - pending.created_at > MAX_PENDING_AGE:
            why = "its channel is no longer declared" if channel is None else f"not delivered within {MAX_PENDING_AGE}"
            log.warning("alert message dropped (%s): %s of %s (%s)", why, pending.kind, pending.incident.asset,
                        pending.incident.rule)  # fmt: skip
            outcomes.append(Outcome(pending, "expired", why))
            continue
        if pending.channel in failed_now:
            outcomes.append(Outcome(pending, "skipped"))
            continue
        recipients = email_recipients(channel, pending.incident) if isinstance(channel, EmailChannel) else ()
        tries = 1 if pending.channel in down else settings.retry_attempts
        try:
            send(Delivery(pending.channel, channel, recipients), as_transition(pending), settings, environ, tries)
        except Exception as exc:  # never stop the caller: the message stays queued
            failed_now.add(pending.channel)
            outcomes.append(Outcome(pending, "pending", describe_failure(exc)))
        else:
            outcomes.append(Outcome(pending, "sent"))
    return outcomes


def process(
    workspace: Workspace,
    observations: Iterable[Observation],
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> PassReport:
    now = now or datetime.now(UTC)
    observations = list(observations)
    report = PassReport(observed=len(observations))
    settings = workspace.settings.notifications
    store = IncidentStore.of_workspace(workspace)
    with store.transaction() as tx:
        report.changes = tx.record(transitions(tx.open(), observations, now))
        for change in report.changes:
            assert change.incident.id is not None  # recorded
            for delivery in deliveries(settings, change.incident):
                tx.outbox.enqueue(change.incident.id, change.kind, delivery.channel_name, now)
        due = tx.outbox.claim(now)
        down = tx.outbox.down_channels()
    outcomes = deliver_all(due, settings, down, now, environ)
    with store.transaction() as tx:
        for outcome in outcomes:
            if outcome.status == "skipped":
                tx.outbox.finish_untried(outcome.pending.id)
            else:
                tx.outbox.finish(outcome.pending.id, outcome.status, outcome.error, now)
        _update_channels(tx.outbox, outcomes, down, settings, now)
        report.pending = tx.outbox.pending_count()
    for outcome in outcomes:
        p = outcome.pending
        if outcome.status == "sent":
            report.sent.append((p.channel, p.kind, f"{p.incident.asset}:{p.incident.rule}"))
        elif outcome.status == "pending":
            report.failed.append((p.channel, outcome.error or ""))
    return report


def _update_channels(
    outbox: Outbox, outcomes: list[Outcome], down: Mapping[str, datetime], settings: NotificationsSettings,
    now: datetime,
) -> None:  # fmt: skip
    """A channel that failed this pass and was up is now down (logged once); one that delivered is up again."""
    tried: dict[str, Outcome] = {}
    for outcome in outcomes:
        if outcome.status in ("sent", "pending"):
            name = outcome.pending.channel
            if outcome.status == "pending" or name not in tried:
                tried[name] = outcome
    for name, outcome in tried.items():
        if outcome.status == "pending" and name not in down:
            log.warning(
                "alert channel %r is down after %d tries (%s): its messages are kept and retried on each pass",
                name, settings.retry_attempts, outcome.error,
            )  # fmt: skip
            outbox.mark_channel(name, now, outcome.error)
        elif outcome.status == "sent" and name in down:
            log.info("alert channel %r is back (down since %s): queued messages delivered", name,
                        down[name].isoformat(timespec="seconds"))  # fmt: skip
            outbox.mark_channel(name, None, None)
