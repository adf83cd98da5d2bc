"""Unit tests of the pure alerting logic: incident transitions (dedup, resolve), routing, messages, the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from foundation.core.settings import NotificationsSettings
from foundation.engine.notifications.incidents import Incident, Observation, transitions
from foundation.engine.notifications.messages import json_payload, slack_payload, subject, text_body
from foundation.engine.notifications.routing import deliveries
from foundation.engine.notifications.store import IncidentStore

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def observation(failing: bool, asset: str = "fleet/bronze/telemetry", rule: str = "min_rows", **kw) -> Observation:
    fields = {
        "event": "blocking_check_failed",
        "usecase": "fleet",
        "value": "rows=1" if failing else "rows=40",
        "link": "http://dagster/assets/fleet/bronze/telemetry?view=checks",
        "owners": ("fleet-data@example.com", "ops@example.com"),
        **kw,
    }
    return Observation(asset=asset, rule=rule, failing=failing, **fields)


def opened(obs: Observation) -> Incident:
    [change] = transitions({}, [obs], T0)
    return change.incident


def test_a_failure_opens_one_incident_and_a_repeat_opens_none() -> None:
    [change] = transitions({}, [observation(True)], T0)
    assert change.kind == "opened"
    assert (change.incident.asset, change.incident.rule, change.incident.value) == (
        "fleet/bronze/telemetry",
        "min_rows",
        "rows=1",
    )
    assert change.incident.severity == "error" and change.incident.opened_at == T0
    still_open = {change.incident.key: change.incident}
    assert transitions(still_open, [observation(True)], T0 + timedelta(minutes=1)) == []


def test_a_pass_resolves_the_open_incident_and_a_pass_with_none_open_is_silent() -> None:
    incident = opened(observation(True))
    [change] = transitions({incident.key: incident}, [observation(False)], T0 + timedelta(hours=1))
    assert change.kind == "resolved"
    assert change.incident.resolved_at == T0 + timedelta(hours=1)
    assert (change.incident.value, change.incident.resolved_value) == ("rows=1", "rows=40")
    assert transitions({}, [observation(False)], T0) == []


def test_incidents_are_per_asset_and_rule_and_the_last_observation_of_a_key_wins() -> None:
    changes = transitions(
        {},
        [
            observation(True),
            observation(True, rule="unique"),
            observation(True, asset="fleet/bronze/repairs"),
            observation(True, asset="fleet/bronze/gps"),
            observation(False, asset="fleet/bronze/gps"),
        ],
        T0,
    )
    assert sorted(c.incident.key for c in changes) == [
        ("fleet/bronze/repairs", "min_rows"),
        ("fleet/bronze/telemetry", "min_rows"),
        ("fleet/bronze/telemetry", "unique"),
    ]


def test_the_store_keeps_incidents_across_processes_and_allows_one_open_per_key(tmp_path) -> None:
    store = IncidentStore(tmp_path / "incidents.sqlite")
    with store.transaction() as tx:
        [first] = tx.record(transitions(tx.open(), [observation(True)], T0))
    assert first.incident.id is not None
    reopened = IncidentStore(tmp_path / "incidents.sqlite")  # as a restarted daemon would
    assert list(reopened.open()) == [("fleet/bronze/telemetry", "min_rows")]
    with reopened.transaction() as tx:
        assert tx.record(transitions(tx.open(), [observation(True)], T0)) == []
        [resolved] = tx.record(transitions(tx.open(), [observation(False)], T0 + timedelta(hours=2)))
    assert resolved.kind == "resolved" and reopened.open() == {}
    with reopened.transaction() as tx:  # it can fail again: a second incident, history kept
        tx.record(transitions(tx.open(), [observation(True)], T0 + timedelta(hours=3)))
    history = reopened.history()
    assert [(i.resolved_at is None, i.resolved_value) for i in history] == [(False, "rows=40"), (True, None)]
    assert history[0].owners == ("fleet-data@example.com", "ops@example.com")


def settings(**data) -> NotificationsSettings:
    channels = {
        "ops_slack": {"type": "webhook", "url": "${SLACK_URL}", "format": "slack"},
        "owners_mail": {"type": "email", "host": "smtp.example.com", "from": "foundation@example.com"},
        "oncall_mail": {
            "type": "email",
            "host": "smtp.example.com",
            "from": "foundation@example.com",
            "to": ["oncall@example.com"],
        },
    }
    return NotificationsSettings(**{"channels": channels, **data})


def test_no_rules_route_every_incident_to_every_channel_and_email_defaults_to_the_owners() -> None:
    routed = deliveries(settings(), opened(observation(True)))
    assert [(d.channel_name, d.recipients) for d in routed] == [
        ("ops_slack", ()),
        ("owners_mail", ("fleet-data@example.com", "ops@example.com")),
        ("oncall_mail", ("oncall@example.com",)),
    ]


def test_rules_route_by_event_usecase_and_least_severity() -> None:
    routing = settings(
        rules=[
            {"channels": ["ops_slack"]},  # everything
            {"channels": ["oncall_mail"], "severity": "error"},
            {"channels": ["owners_mail"], "events": ["kpi_alert"], "usecases": ["finance"]},
        ]
    )
    blocking = opened(observation(True))
    drift = opened(observation(True, event="monitoring_check_failed", rule="feature_drift"))
    kpi_fleet = opened(observation(True, event="kpi_alert", rule="kpi_alert"))
    kpi_finance = opened(observation(True, event="kpi_alert", rule="kpi_alert", usecase="finance"))
    assert [d.channel_name for d in deliveries(routing, blocking)] == ["ops_slack", "oncall_mail"]
    assert [d.channel_name for d in deliveries(routing, drift)] == ["ops_slack"]  # a warning: not to on-call
    assert [d.channel_name for d in deliveries(routing, kpi_fleet)] == ["ops_slack"]
    assert [d.channel_name for d in deliveries(routing, kpi_finance)] == ["ops_slack", "owners_mail"]


def test_team_owners_are_not_mailed() -> None:
    incident = opened(observation(True, owners=("team:fleet", "ana@example.com")))
    [mail] = [d for d in deliveries(settings(), incident) if d.channel_name == "owners_mail"]
    assert mail.recipients == ("ana@example.com",)


def test_every_message_names_usecase_asset_owner_rule_value_and_link() -> None:
    [change] = transitions({}, [observation(True)], T0)
    body = text_body(change)
    for expected in (
        "fleet",
        "fleet/bronze/telemetry",
        "fleet-data@example.com",
        "min_rows",
        "rows=1",
        "http://dagster/assets/fleet/bronze/telemetry?view=checks",
    ):
        assert expected in body
    assert subject(change).startswith("[FAILING] fleet: blocking check failed")
    assert json_payload(change)["status"] == "firing" and json_payload(change)["value"] == "rows=1"
    slack = slack_payload(change)
    assert slack["text"].startswith(":red_circle: [FAILING]")
    texts = [f["text"] for f in slack["blocks"][1]["fields"]]
    assert "*Rule*\nmin_rows" in texts and "*Value*\nrows=1" in texts
    assert "http://dagster/assets/fleet/bronze/telemetry?view=checks" in slack["blocks"][2]["text"]["text"]
    [resolved] = transitions({change.incident.key: change.incident}, [observation(False)], T0 + timedelta(hours=1))
    assert subject(resolved).startswith("[RESOLVED]")
    assert "rows=40 (was rows=1)" in text_body(resolved)
    assert json_payload(resolved)["status"] == "resolved"


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"type": "pager", "url": "${X}"}, "does not match any of the expected tags"),
        ({"type": "webhook"}, "Field required"),
        ({"type": "webhook", "url": "https://hooks.slack.com/services/T0/B0/secret"}, "${VAR} reference"),
        ({"type": "email", "host": "h", "from": "a@b.c", "user": "${U}"}, "needs both user and password"),
        ({"type": "email", "host": "h", "from": "a@b.c", "user": "${U}", "password": "hunter2"}, "${VAR} reference"),
    ],
)
def test_bad_channels_are_refused(channel: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("$", r"\$").replace("{", r"\{").replace("}", r"\}")):
        NotificationsSettings(channels={"c": channel})


def test_rules_must_name_declared_channels_and_known_events() -> None:
    with pytest.raises(ValidationError, match="unknown channel"):
        settings(rules=[{"channels": ["pagerduty"]}])
    with pytest.raises(ValidationError, match="run_failed"):
        settings(rules=[{"channels": ["ops_slack"], "events": ["run_crashed"]}])


def test_the_outbox_hands_a_message_to_one_evaluation_and_again_only_if_that_one_died(tmp_path) -> None:
    store = IncidentStore(tmp_path / "incidents.sqlite")
    with store.transaction() as tx:
        [change] = tx.record(transitions(tx.open(), [observation(True)], T0))
        tx.outbox.enqueue(change.incident.id, "opened", "ops_slack", T0)
        tx.outbox.enqueue(change.incident.id, "opened", "owners_mail", T0)
        first = tx.outbox.claim(T0)
    assert [(p.channel, p.kind, p.incident.rule) for p in first] == [
        ("ops_slack", "opened", "min_rows"),
        ("owners_mail", "opened", "min_rows"),
    ]
    with store.transaction() as tx:
        assert tx.outbox.claim(T0 + timedelta(minutes=1)) == []  # another evaluation: already claimed
        tx.outbox.finish(first[0].id, "sent", None, T0)
        tx.outbox.finish(first[1].id, "pending", "unreachable", T0)  # kept for the next pass
        assert [p.channel for p in tx.outbox.claim(T0 + timedelta(minutes=2))] == ["owners_mail"]
        assert tx.outbox.claim(T0 + timedelta(minutes=3)) == []
        # the evaluation holding it died: after the claim timeout another one takes it
        assert [p.channel for p in tx.outbox.claim(T0 + timedelta(minutes=13))] == ["owners_mail"]
        assert tx.outbox.statuses() == [("ops_slack", "opened", "sent", 1), ("owners_mail", "opened", "pending", 1)]
        assert tx.outbox.pending_count() == 1
        tx.outbox.mark_channel("owners_mail", T0, "unreachable")
        assert tx.outbox.down_channels() == {"owners_mail": T0}
        tx.outbox.mark_channel("owners_mail", None, None)
        assert tx.outbox.down_channels() == {}


def test_a_failing_channel_costs_its_retries_once_per_pass_and_one_try_while_known_down(tmp_path) -> None:
    from alert_receivers import WebhookReceiver

    from foundation.engine.notifications.service import deliver_all
    from foundation.engine.notifications.store import PendingDelivery

    with WebhookReceiver() as hook:
        hook.status = 500
        routing = settings(retry_attempts=3, retry_max_wait_s=0.01)
        incident = opened(observation(True))
        due = [PendingDelivery(i, "opened", "ops_slack", incident, T0) for i in range(3)]
        env = {"SLACK_URL": hook.url}
        outcomes = deliver_all(due, routing, {}, T0, env)
        assert [o.status for o in outcomes] == ["pending", "skipped", "skipped"]
        assert outcomes[0].error == "HTTP 500" and len(hook.bodies) == 3  # 3 tries of the first, none of the others
        outcomes = deliver_all(due, routing, {"ops_slack": T0}, T0, env)  # known down: one try
        assert [o.status for o in outcomes] == ["pending", "skipped", "skipped"] and len(hook.bodies) == 4
        hook.status = 200
        assert [o.status for o in deliver_all(due, routing, {"ops_slack": T0}, T0, env)] == ["sent"] * 3
        late = deliver_all(due[:1], routing, {}, T0 + timedelta(hours=25), env)  # a day late: dropped, logged
        assert [o.status for o in late] == ["expired"] and len(hook.bodies) == 7


def test_a_store_written_before_incidents_kept_a_ref_opens_and_keeps_its_incidents(tmp_path) -> None:
    import sqlite3

    path = tmp_path / "incidents.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE incidents (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL, usecase TEXT NOT NULL, "
        "asset TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL, owners TEXT NOT NULL, value TEXT NOT NULL, "
        "link TEXT NOT NULL, opened_at TEXT NOT NULL, resolved_at TEXT, resolved_value TEXT);"
        "INSERT INTO incidents (event, usecase, asset, rule, severity, owners, value, link, opened_at) VALUES "
        "('kpi_alert', 'fleet', 'fleet/kpis/kpi_x', 'kpi_alert', 'warning', '[]', '0.8', 'http://d', "
        "'2026-12-06T08:00:00+00:00');"
    )
    con.commit()
    con.close()
    [incident] = IncidentStore(path).open().values()
    assert (incident.asset, incident.ref) == ("fleet/kpis/kpi_x", "")
