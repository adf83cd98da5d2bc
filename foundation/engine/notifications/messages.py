"""Messages, pure: one incident transition as a subject + text (e-mail), a JSON object, or a Slack payload."""

from __future__ import annotations

from typing import Any

from foundation.engine.notifications.incidents import Transition

EVENT_TITLES = {
    "run_failed": "run failed",
    "blocking_check_failed": "blocking check failed",
    "monitoring_check_failed": "monitoring check failed",
    "kpi_alert": "KPI past its alert threshold",
    "source_stale": "source stale",
}


def status_of(transition: Transition) -> str:
    return "FAILING" if transition.kind == "opened" else "RESOLVED"


def subject(transition: Transition) -> str:
    i = transition.incident
    return f"[{status_of(transition)}] {i.usecase}: {EVENT_TITLES[i.event]}: {i.asset} ({i.rule})"


def fields(transition: Transition) -> list[tuple[str, str]]:
    """(label, value) lines every message carries: use case, asset, owner, rule, measured value, link."""
    i = transition.incident
    rows = [
        ("Use case", i.usecase),
        ("Asset", i.asset),
        ("Owner", ", ".join(i.owners) or "-"),
        ("Rule", i.rule),
        ("Severity", i.severity),
        ("Value", i.value if transition.kind == "opened" else f"{i.resolved_value or '-'} (was {i.value})"),
        ("Since", i.opened_at.isoformat(timespec="seconds")),
    ]
    if i.resolved_at is not None:
        rows.append(("Resolved", i.resolved_at.isoformat(timespec="seconds")))
    rows.append(("Link", i.link))
    return rows


def text_body(transition: Transition) -> str:
    width = max(len(label) for label, _ in fields(transition))
    lines = [subject(transition), ""]
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in fields(transition)]
    return "\n".join(lines) + "\n"


def json_payload(transition: Transition) -> dict[str, Any]:
    return {"status": "firing" if transition.kind == "opened" else "resolved", **transition.incident.to_dict()}


def slack_payload(transition: Transition) -> dict[str, Any]:
    """Slack's incoming-webhook payload: `text` (notifications, clients without blocks) and `blocks`."""
    i = transition.incident
    icon = ":red_circle:" if transition.kind == "opened" else ":large_green_circle:"
    shown = [(label, value) for label, value in fields(transition) if label != "Link"]
    return {
        "text": f"{icon} {subject(transition)}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": subject(transition)[:150]}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in shown[:10]],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{i.link}|Open in Dagster>"}},
        ],
    }
