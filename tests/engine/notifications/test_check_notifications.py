"""`foundation check` on the notifications block: each mistake reported as file:line: field: message, no secret
repeated; an unset channel variable does not stop a workspace from opening (it is needed only to send)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.workspace import Workspace

GOOD = """\
state_dir: .foundation
notifications:
  dagster_url: https://dagster.example.com
  channels:
    ops_slack:
      type: webhook
      url: ${ALERTS_SLACK_URL}
      format: slack
    owners_mail:
      type: email
      host: smtp.example.com
      from: foundation@example.com
      user: ${SMTP_USER}
      password: ${SMTP_PASSWORD}
  rules:
    - {channels: [ops_slack], severity: warning}
    - {channels: [owners_mail], events: [blocking_check_failed, run_failed]}
"""


def check(tmp_path: Path, settings: str) -> tuple[int, list[dict]]:
    (tmp_path / "foundation.yaml").write_text(settings)
    result = CliRunner().invoke(app, ["--workspace", str(tmp_path), "check", "--json"])
    return result.exit_code, json.loads(result.output)["errors"]


def errors_of(report: list[dict]) -> list[tuple[int, str, str]]:
    return [(e["line"], e["field"], e["message"]) for e in report if e["severity"] == "error"]


def test_a_valid_block_checks_and_unset_variables_are_warnings(tmp_path: Path, monkeypatch) -> None:
    for name in ("ALERTS_SLACK_URL", "SMTP_USER", "SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    code, report = check(tmp_path, GOOD)
    assert code == 0, report
    unset = {(e["line"], e["message"]) for e in report if e["severity"] == "warning"}
    assert (7, "environment variable ALERTS_SLACK_URL is not set") in unset
    assert (14, "environment variable SMTP_PASSWORD is not set") in unset
    workspace = Workspace.open(tmp_path)  # opens: channel secrets are resolved when a message is sent
    assert workspace.settings.notifications.channels["owners_mail"].password == "${SMTP_PASSWORD}"


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        (
            "      user: ${SMTP_USER}\n      password: ${SMTP_PASSWORD}\n",
            "      user: ${SMTP_USER}\n",
            9,
            "notifications.channels.owners_mail",
            "needs both user and password",
        ),
        ("      url: ${ALERTS_SLACK_URL}\n", "", 5, "notifications.channels.ops_slack.url", "Field required"),
        ("type: webhook", "type: pagerduty", 5, "notifications.channels.ops_slack", "'pagerduty'"),
        ("run_failed]", "run_crashed]", 17, "notifications.rules.1.events.1", "'run_failed'"),
        (
            "[ops_slack], severity",
            "[ops_slak], severity",
            2,
            "notifications",
            "rules[0] names unknown channel(s) ops_slak",
        ),
    ],
)
def test_each_mistake_is_an_error_with_its_line(tmp_path: Path, old, new, line, field, message) -> None:
    assert old in GOOD
    code, report = check(tmp_path, GOOD.replace(old, new))
    assert code == 1
    [(got_line, got_field, got_message)] = errors_of(report)
    assert got_field == field and message in got_message
    assert got_line == line


def test_a_literal_secret_is_an_error_and_is_not_repeated(tmp_path: Path) -> None:
    code, report = check(tmp_path, GOOD.replace("${SMTP_PASSWORD}", "hunter2-very-secret"))
    assert code == 1
    assert errors_of(report) == [
        (14, "notifications.channels.owners_mail.password", "a secret written in the YAML (its value is not shown)")
    ]
    assert "hunter2" not in json.dumps(report)


def test_the_alert_sensors_run_by_default_once_a_channel_is_declared(tmp_path: Path) -> None:
    import dagster as dg

    from foundation.dagster_defs.alert_sensors import alert_sensors

    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    assert alert_sensors(Workspace.open(tmp_path)) == []
    (tmp_path / "foundation.yaml").write_text(GOOD)
    sensors = alert_sensors(Workspace.open(tmp_path))
    assert sorted(s.name for s in sensors) == ["alerts_health", "alerts_run_failure", "alerts_run_success"]
    assert {s.default_status for s in sensors} == {dg.DefaultSensorStatus.RUNNING}


def test_the_documented_example_block_validates(tmp_path: Path) -> None:
    text = (Path(__file__).parents[3] / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("\n## Alerts\n", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    code, report = check(tmp_path, "state_dir: .foundation\n" + block.replace("# foundation.yaml\n", ""))
    assert code == 0, report
    settings = Workspace.open(tmp_path).settings.notifications
    assert sorted(settings.channels) == ["ops_slack", "owners_mail"] and len(settings.rules) == 2


def test_a_rule_naming_an_unknown_usecase_is_an_error_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "usecases" / "fleet" / "sources").mkdir(parents=True)
    (tmp_path / "usecases" / "fleet" / "usecase.yaml").write_text(
        "title: Fleet\ndescription: Trucks and their failures\nowner: fleet@example.com\n"
    )
    settings = GOOD.replace("events: [blocking_check_failed, run_failed]}", "usecases: [fleet, flete]}")
    code, report = check(tmp_path, settings)
    assert code == 1
    [(line, field, message)] = errors_of(report)
    assert (line, field) == (17, "notifications.rules.1.usecases")
    assert message == "no use case 'flete': this rule would route nothing for it"
    code, report = check(tmp_path, settings.replace(", flete]", "]"))
    assert code == 0, report
