"""Routing, pure: which channels an incident's messages go to, and the e-mail recipients."""

from __future__ import annotations

from dataclasses import dataclass

from foundation.core.settings import EmailChannel, NotificationRule, NotificationsSettings, WebhookChannel
from foundation.engine.notifications.incidents import SEVERITY_RANK, Incident


@dataclass(frozen=True)
class Delivery:
    channel_name: str
    channel: WebhookChannel | EmailChannel
    recipients: tuple[str, ...] = ()  # e-mail only


def rule_matches(rule: NotificationRule, incident: Incident) -> bool:
    return (
        (not rule.events or incident.event in rule.events)
        and (not rule.usecases or incident.usecase in rule.usecases)
        and SEVERITY_RANK[incident.severity] >= SEVERITY_RANK[rule.severity]
    )


def email_recipients(channel: EmailChannel, incident: Incident) -> tuple[str, ...]:
    """The channel's fixed `to`, else the owners declared in the YAML that are e-mail addresses."""
    if channel.to:
        return tuple(channel.to)
    return tuple(dict.fromkeys(o for o in incident.owners if "@" in o and not o.startswith("team:")))


def deliveries(settings: NotificationsSettings, incident: Incident) -> list[Delivery]:
    """One delivery per channel the rules select (no rules: every channel)."""
    if settings.rules:
        names = [c for rule in settings.rules if rule_matches(rule, incident) for c in rule.channels]
    else:
        names = list(settings.channels)
    result = []
    for name in dict.fromkeys(names):
        channel = settings.channels[name]
        recipients = email_recipients(channel, incident) if isinstance(channel, EmailChannel) else ()
        result.append(Delivery(name, channel, recipients))
    return result
