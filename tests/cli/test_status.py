"""`foundation status`: layers, stale assets, failing checks, next ticks, the daemon; the pure rules behind it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.dagster_defs.status import daemon_state, layer_summary, stale_assets

runner = CliRunner()
K = dg.AssetKey


def test_stale_assets_behind_their_inputs_late_crons_and_old_sources() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    t = now.timestamp()
    bronze, stg, mart, train = (
        K(["u", "bronze", "s"]),
        K(["u", "staging", "s"]),
        K(["u", "marts", "m"]),
        K(["u", "ml", "t"]),
    )
    never = K(["u", "kpis", "k"])
    parents = {bronze: [], stg: [bronze], mart: [stg], train: [mart], never: [mart]}
    materialized = {bronze: t - 60, stg: t - 30, mart: t - 3600, train: t - 7200, never: None}
    crons = {train: "0 6 * * *"}  # 06:00 passed after the mart's refresh? no: the mart is from 11:00
    stale = {s["asset"]: s["reason"] for s in stale_assets(parents, materialized, crons, {}, now)}
    assert stale == {
        "u/marts/m": "u/staging/s refreshed after it",
        "u/kpis/k": "never ran; its inputs exist",
    }  # train: its next 06:00 tick will take the new mart, it is not late
    late_cron = {train: "0 * * * *"}  # hourly: 12:00 passed after the mart's 11:00 refresh
    assert "u/ml/t" in {s["asset"] for s in stale_assets(parents, materialized, late_cron, {}, now)}
    old = stale_assets({bronze: []}, {bronze: t - 7200}, {}, {bronze: timedelta(hours=1)}, now)
    assert old == [{"asset": "u/bronze/s", "reason": "last load older than 1:00:00"}]


def test_layer_summary_in_flow_order() -> None:
    keys = [K(["u", "marts", "m"]), K(["u", "bronze", "s"]), K(["u", "marts", "n"])]
    rows = layer_summary(keys, {keys[0]: 1_700_000_000.0, keys[1]: 1_700_000_100.0, keys[2]: None})
    assert [(r["layer"], r["assets"], r["never_run"]) for r in rows] == [("bronze", 1, 0), ("marts", 2, 1)]
    assert rows[1]["last_refresh"] == "2023-11-14T22:13:20+00:00"


def test_daemon_state_from_heartbeats() -> None:
    assert daemon_state({"SENSOR": 1000.0, "ASSET": 990.0}, 1030.0)["running"] is True
    stopped = daemon_state({"SENSOR": 1000.0}, 5000.0)
    assert stopped["running"] is False and "foundation daemon" in stopped["hint"]
    assert daemon_state({}, 5000.0)["last_heartbeat"] is None


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    sources = tmp_path / "usecases" / "plant" / "sources"
    sources.mkdir(parents=True)
    (sources / "readings.yaml").write_text(
        "name: readings\ndescription: Sensor readings for the status tests\nowner: data@example.com\n"
        "schedule: '0 6 * * *'\nextract: {type: csv, path: landing/readings.csv}\nload: {mode: replace}\n"
        "checks:\n  - unique: [id]\n"
    )
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "readings.csv").write_text("id,temp_c\n1,20.5\n1,21\n3,22\n")  # a duplicate id
    return tmp_path


def test_status_shows_refresh_failing_check_and_next_tick(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    before = runner.invoke(app, ["--workspace", str(workspace), "status", "--json"])
    (uc,) = json.loads(before.stdout)["data"]["usecases"]
    assert uc["layers"] == [
        {"layer": "bronze", "assets": 1, "never_run": 1, "last_refresh": None, "oldest_refresh": None}
    ]
    runner.invoke(app, ["--workspace", str(workspace), "run"])  # lands, then the unique check fails
    result = runner.invoke(app, ["--workspace", str(workspace), "status", "--json"])
    assert result.exit_code == 1, result.output  # an error check fails
    report = json.loads(result.stdout)["data"]
    assert report["ok"] is False and report["daemon"]["running"] is False
    (uc,) = report["usecases"]
    assert uc["usecase"] == "plant" and uc["layers"][0]["last_refresh"] is not None
    (failing,) = uc["failing_checks"]
    assert failing["asset"] == "plant/bronze/readings" and failing["check"].startswith("unique")
    assert failing["severity"] == "error" and not failing["passed"]
    (tick,) = [t for t in uc["next_ticks"] if t["kind"] == "schedule"]
    assert tick["name"] == "plant__readings__schedule" and tick["next"].endswith("06:00:00+00:00")
    assert uc["incidents"] == []
    text = runner.invoke(app, ["--workspace", str(workspace), "status"])
    assert (
        "not running" in text.stdout and "Failing checks" in text.stdout and "plant__readings__schedule" in text.stdout
    )
    # an incident the alerts opened (foundation/engine/notifications) is on the screen until it is resolved
    from foundation.core.workspace import Workspace
    from foundation.engine.notifications.incidents import Incident, Transition
    from foundation.engine.notifications.store import IncidentStore

    incident = Incident(
        event="check_failed",
        usecase="plant",
        asset="plant/bronze/readings",
        rule="unique__id",
        severity="error",
        owners=("data@example.com",),
        value="1 duplicated keys",
        link="http://dagster.example/assets/plant/bronze/readings",
        opened_at=datetime.now(UTC),
    )
    with IncidentStore.of_workspace(Workspace.open(workspace)).transaction() as recorder:
        recorder.record([Transition("opened", incident)])
    shown = json.loads(runner.invoke(app, ["--workspace", str(workspace), "status", "plant", "--json"]).stdout)["data"]
    (open_incident,) = shown["usecases"][0]["incidents"]
    assert open_incident["rule"] == "unique__id" and open_incident["owners"] == ["data@example.com"]
    assert "Open incidents" in runner.invoke(app, ["--workspace", str(workspace), "status"]).stdout
    unknown = runner.invoke(app, ["--workspace", str(workspace), "status", "nope"])
    assert unknown.exit_code == 2 and "no use case named 'nope'" in unknown.output
