"""The alert sensors on a real Dagster instance (SQLite storage in a temp folder) with real runs of a real source:
a planted failing blocking check (min_rows) sends one webhook to a local HTTP server and one e-mail to a local SMTP
server (aiosmtpd); a second look sends nothing; its recovery sends one "resolved" on each channel; an unreachable
webhook is retried, logged once, and does not stop the sensor.

The sensors are evaluated through Dagster's `build_sensor_context` / `build_run_status_sensor_context` on that
instance (fast, every case); test_alerts_daemon.py runs the main case through the real `dagster-daemon`."""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg
import pytest
from alert_receivers import WebhookReceiver, free_port, smtp_server

from foundation.dagster_defs.alert_sensors import alert_sensors
from foundation.dagster_defs.definitions import ingestion_definitions
from foundation.engine.notifications import open_incidents

pytestmark = pytest.mark.slow

OWNER = "data-team@example.com"
DAGSTER_URL = "http://dagster.example.com"


def alert_settings(smtp_port: int, **extra: Any) -> dict[str, Any]:
    return {
        "notifications": {
            "dagster_url": DAGSTER_URL,
            "channels": {
                "ops": {"type": "webhook", "url": "${ALERT_HOOK_URL}", "format": "slack"},
                "owners": {
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "from": "foundation@example.com",
                    "starttls": False,
                },
            },
            "rules": [{"channels": ["ops", "owners"], "events": ["blocking_check_failed"]}],
            "retry_attempts": 3,
            "retry_max_wait_s": 0.05,
            **extra,
        }
    }


def telemetry_source(spec: Any) -> dict[str, Any]:
    return spec(
        "telemetry",
        {"type": "csv", "path": "landing/telemetry/*.csv"},
        owner=OWNER,
        checks=[{"completeness": {"min_rows": 3}}],
    )


class Platform:
    """The workspace's ingestion assets and alert sensors on one real Dagster instance."""

    def __init__(self, kit: Any, instance: dg.DagsterInstance, assets: list[Any] | None = None) -> None:
        self.kit = kit
        self.instance = instance
        self.workspace = kit.open()
        ingestion = ingestion_definitions(self.workspace)
        self.defs = dg.Definitions(
            assets=assets or ingestion.assets, resources=ingestion.resources, sensors=alert_sensors(self.workspace)
        )

    def materialize(self) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            list(self.defs.assets or []), resources=self.defs.resources, instance=self.instance, raise_on_error=False
        )

    def health_tick(self) -> str:
        sensor = self.defs.resolve_sensor_def("alerts_health")
        context = dg.build_sensor_context(instance=self.instance, repository_def=self.defs.get_repository_def())
        result = sensor.evaluate_tick(context)
        return result.skip_message or ""

    def run_status_tick(self, result: dg.ExecuteInProcessResult, name: str, event_type: dg.DagsterEventType) -> None:
        event = next(e for e in result.all_events if e.event_type == event_type)
        context = dg.build_run_status_sensor_context(
            sensor_name=name,
            dagster_event=event,
            dagster_instance=self.instance,
            dagster_run=result.dagster_run,
            repository_def=self.defs.get_repository_def(),
        )
        sensor = self.defs.resolve_sensor_def(name)
        if event_type == dg.DagsterEventType.RUN_FAILURE:
            sensor(context.for_run_failure())
        else:
            sensor(context)


@pytest.fixture
def instance(tmp_path) -> dg.DagsterInstance:
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        yield instance


def test_a_failing_blocking_check_alerts_once_per_channel_and_once_resolved(
    make_workspace, spec, instance, monkeypatch
) -> None:
    with WebhookReceiver() as hook, smtp_server() as (smtp_port, inbox):
        monkeypatch.setenv("ALERT_HOOK_URL", hook.url)
        kit = make_workspace(
            sources=[telemetry_source(spec)],
            files={"landing/telemetry/a.csv": "truck_id,temp\nT1,80\n"},  # 1 row < min_rows 3
            settings=alert_settings(smtp_port),
        )
        platform = Platform(kit, instance)
        failed = platform.materialize()
        assert not failed.success
        # the run failed because of the check: the check's incident is the one alert, not the run too
        platform.run_status_tick(failed, "alerts_run_failure", dg.DagsterEventType.RUN_FAILURE)
        assert open_incidents(platform.workspace) == []

        assert "1 incident(s) opened" in platform.health_tick()
        assert len(hook.bodies) == 1 and len(inbox) == 1
        [slack] = hook.bodies
        assert slack["text"].startswith(":red_circle: [FAILING] uc: blocking check failed: uc/bronze/telemetry")
        fields = "\n".join(f["text"] for f in slack["blocks"][1]["fields"])
        for expected in ("*Use case*\nuc", "*Asset*\nuc/bronze/telemetry", f"*Owner*\n{OWNER}", "*Rule*\ncompleteness"):
            assert expected in fields
        assert "*Value*\n" in fields and "failing=" in fields
        assert f"{DAGSTER_URL}/assets/uc/bronze/telemetry?view=checks" in slack["blocks"][2]["text"]["text"]
        recipients, mail = inbox[0]
        assert recipients == [OWNER]  # no `to:`: the owner declared in the source YAML
        assert (
            str(mail["Subject"])
            .strip()
            .startswith("[FAILING] uc: blocking check failed: uc/bronze/telemetry (completeness)")
        )
        assert f"{DAGSTER_URL}/assets/uc/bronze/telemetry?view=checks" in mail.get_content()
        [incident] = open_incidents(platform.workspace)
        assert (incident["asset"], incident["rule"], incident["event"]) == (
            "uc/bronze/telemetry",
            "completeness",
            "blocking_check_failed",
        )

        # Another look, and another failed run of the same check: still one incident, nothing sent.
        assert "0 incident(s) opened" in platform.health_tick()
        assert not platform.materialize().success
        platform.health_tick()
        assert len(hook.bodies) == 1 and len(inbox) == 1

        kit.land("landing/telemetry/b.csv", "truck_id,temp\nT2,81\nT3,82\nT4,79\n")
        assert platform.materialize().success
        assert "1 resolved" in platform.health_tick()
        assert len(hook.bodies) == 2 and len(inbox) == 2
        assert hook.bodies[1]["text"].startswith(":large_green_circle: [RESOLVED] uc: blocking check failed")
        assert str(inbox[1][1]["Subject"]).strip().startswith("[RESOLVED] uc:")
        assert open_incidents(platform.workspace) == []
        platform.health_tick()
        assert len(hook.bodies) == 2 and len(inbox) == 2


def test_an_unreachable_webhook_is_logged_once_keeps_its_message_and_delivers_it_when_back(
    make_workspace, spec, instance, monkeypatch, caplog
) -> None:
    port = free_port()
    monkeypatch.setenv("ALERT_HOOK_URL", f"http://127.0.0.1:{port}/hooks/T000/B000/s3cr3t")  # nothing listens yet
    with smtp_server() as (smtp_port, inbox):
        kit = make_workspace(
            sources=[telemetry_source(spec)],
            files={"landing/telemetry/a.csv": "truck_id,temp\nT1,80\n"},
            settings=alert_settings(smtp_port),
        )
        platform = Platform(kit, instance)
        platform.materialize()
        with caplog.at_level(logging.INFO, logger="foundation.engine.notifications"):
            summary = platform.health_tick()  # returns: the channel's failure does not stop the sensor
            assert "1 message(s) sent, 1 failed, 1 queued" in summary
            [down] = [r for r in caplog.records if r.name == "foundation.engine.notifications"]
            assert "alert channel 'ops' is down after 3 tries (unreachable (connection failed))" in down.getMessage()
            assert "s3cr3t" not in caplog.text  # the URL is the webhook's credential
            assert len(inbox) == 1  # the e-mail channel did its job
            assert len(open_incidents(platform.workspace)) == 1

            caplog.clear()
            assert "0 message(s) sent, 1 failed, 1 queued" in platform.health_tick()  # tried again, not logged
            assert caplog.records == [] and len(inbox) == 1

            with WebhookReceiver(port) as hook:  # the receiver is back
                assert "1 message(s) sent, 0 failed, 0 queued" in platform.health_tick()
                [body] = hook.bodies
                assert body["text"].startswith(":red_circle: [FAILING] uc: blocking check failed")
                [back] = [r for r in caplog.records if r.name == "foundation.engine.notifications"]
                assert "alert channel 'ops' is back" in back.getMessage()
                platform.health_tick()
                assert len(hook.bodies) == 1 and len(inbox) == 1


def test_an_unset_channel_secret_is_a_clear_error_when_used(make_workspace, spec, instance, monkeypatch, caplog):
    monkeypatch.delenv("ALERT_HOOK_URL", raising=False)
    with smtp_server() as (smtp_port, _):
        kit = make_workspace(
            sources=[telemetry_source(spec)],
            files={"landing/telemetry/a.csv": "truck_id,temp\nT1,80\n"},
            settings=alert_settings(smtp_port),
        )
        platform = Platform(kit, instance)  # the workspace opens: the variable is needed only to send
        platform.materialize()
        with caplog.at_level(logging.WARNING, logger="foundation.engine.notifications"):
            platform.health_tick()
    assert "environment variable ALERT_HOOK_URL is not set" in caplog.text


def test_a_failed_run_opens_an_incident_that_its_next_success_resolves(
    make_workspace, instance, monkeypatch, tmp_path
) -> None:
    broken = tmp_path / "broken"
    broken.touch()

    @dg.asset(key=["uc", "gold", "daily_report"], owners=["analyst@example.com"])
    def daily_report() -> None:
        if broken.exists():
            raise RuntimeError("the report's upstream API answered 503")

    with WebhookReceiver() as hook, smtp_server() as (smtp_port, inbox):
        monkeypatch.setenv("ALERT_HOOK_URL", hook.url)
        settings = alert_settings(smtp_port)
        settings["notifications"]["rules"] = [{"channels": ["ops"], "events": ["run_failed"]}]
        platform = Platform(make_workspace(settings=settings), instance, assets=[daily_report])
        failed = platform.materialize()
        assert not failed.success
        platform.run_status_tick(failed, "alerts_run_failure", dg.DagsterEventType.RUN_FAILURE)
        [body] = hook.bodies
        assert body["text"].startswith(":red_circle: [FAILING] uc: run failed: run:uc/gold/daily_report (run)")
        fields = "\n".join(f["text"] for f in body["blocks"][1]["fields"])
        assert "*Owner*\nanalyst@example.com" in fields and "*Value*\nExecution of run" in fields
        assert f"{DAGSTER_URL}/runs/{failed.run_id}" in body["blocks"][2]["text"]["text"]
        assert len(inbox) == 0  # the rule routes run failures to the webhook only
        platform.run_status_tick(failed, "alerts_run_failure", dg.DagsterEventType.RUN_FAILURE)  # seen again
        assert len(hook.bodies) == 1

        broken.unlink()
        succeeded = platform.materialize()
        assert succeeded.success
        platform.run_status_tick(succeeded, "alerts_run_success", dg.DagsterEventType.RUN_SUCCESS)
        assert len(hook.bodies) == 2 and "[RESOLVED] uc: run failed" in hook.bodies[1]["text"]
        assert open_incidents(platform.workspace) == []


def test_a_failed_run_resolves_when_other_runs_materialise_what_it_left(
    make_workspace, instance, monkeypatch, tmp_path
):
    """With automation, the next runs select other subsets: the incident resolves once every asset the failed run
    left unmaterialised has been materialised again, whatever the runs."""
    broken = tmp_path / "broken"
    broken.touch()

    @dg.asset(key=["uc", "gold", "daily_report"])
    def daily_report() -> None:
        if broken.exists():
            raise RuntimeError("the report's upstream API answered 503")

    @dg.asset(key=["uc", "gold", "weekly_report"])
    def weekly_report() -> None:
        pass

    with WebhookReceiver() as hook, smtp_server() as (smtp_port, _):
        monkeypatch.setenv("ALERT_HOOK_URL", hook.url)
        settings = alert_settings(smtp_port)
        settings["notifications"]["rules"] = [{"channels": ["ops"], "events": ["run_failed"]}]
        platform = Platform(make_workspace(settings=settings), instance, assets=[daily_report, weekly_report])
        failed = platform.materialize()  # weekly lands, daily fails
        platform.run_status_tick(failed, "alerts_run_failure", dg.DagsterEventType.RUN_FAILURE)
        [incident] = open_incidents(platform.workspace)
        assert (
            incident["asset"] == "run:uc/gold/daily_report, uc/gold/weekly_report" and incident["ref"] == failed.run_id
        )

        weekly_only = dg.materialize([weekly_report], instance=instance)  # not what failed: still open
        platform.run_status_tick(weekly_only, "alerts_run_success", dg.DagsterEventType.RUN_SUCCESS)
        assert len(open_incidents(platform.workspace)) == 1 and len(hook.bodies) == 1

        broken.unlink()
        daily_only = dg.materialize([daily_report], instance=instance)
        platform.run_status_tick(daily_only, "alerts_run_success", dg.DagsterEventType.RUN_SUCCESS)
        assert open_incidents(platform.workspace) == []
        assert [b["text"][:40] for b in hook.bodies] == [
            ":red_circle: [FAILING] uc: run failed: r",
            ":large_green_circle: [RESOLVED] uc: run ",
        ]
        assert "*Value*\nuc/gold/daily_report materialised again (was " in "\n".join(
            f["text"] for f in hook.bodies[1]["blocks"][1]["fields"]
        )
