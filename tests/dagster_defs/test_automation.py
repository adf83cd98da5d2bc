"""Declarative automation: which condition each asset gets, from which policy; the sensor the daemon runs;
bad policies as `check` errors with file:line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.dagster_defs import build_definitions
from foundation.dagster_defs.automation import AutomationPlan
from foundation.specs.automation import AutomationSpec

REPO = Path(__file__).resolve().parents[2]


def _copy_demo(tmp_path: Path) -> Path:
    shutil.copy(REPO / "foundation.yaml", tmp_path / "foundation.yaml")
    shutil.copytree(REPO / "usecases", tmp_path / "usecases")
    ignore = shutil.ignore_patterns("_generated", "target", "logs")
    shutil.copytree(REPO / "dbt_project", tmp_path / "dbt_project", ignore=ignore)
    return tmp_path


def _conditions(defs: dg.Definitions) -> dict[str, str | None]:
    labels = {}
    for asset in defs.assets or []:
        for spec in asset.specs:
            condition = spec.automation_condition
            labels["/".join(spec.key.path)] = condition.get_label() if condition else None
    return labels


def test_demo_workspace_automates_every_asset_downstream_of_bronze(tmp_path: Path) -> None:
    defs = build_definitions(_copy_demo(tmp_path))
    labels = _conditions(defs)
    bronze = {k for k in labels if k.split("/")[1] == "bronze"}
    assert bronze and all(labels[k] is None for k in bronze)  # sources keep their cron schedules
    others = {k: v for k, v in labels.items() if k not in bronze}
    assert len(others) >= 35
    assert [k for k, v in others.items() if v is None] == []
    # dbt layers and gold: eager on upstream updates
    for key, label in others.items():
        layer = key.split("/")[1]
        if layer in {"staging", "marts", "features", "kpis", "gold"}:
            assert label == "eager", key
    # training on the model spec's cron, the steps after it in the same run, scoring after new features/model
    assert labels["machine_failure/ml/machine_failure/training_set"] == "on_cron(0 2 1 * *, UTC)"
    assert labels["fleet_maintenance/ml/failure_risk/training_set"] == "on_cron(0 3 * * 1, UTC)"
    for step in ("candidates", "evaluation", "registered", "predictions", "monitoring"):
        assert labels[f"machine_failure/ml/machine_failure/{step}"] == "eager"
    # the training cron is now the condition: no second schedule trains the same model
    assert not [s.name for s in defs.schedules or [] if s.name.endswith("__training")]
    # one automation sensor per use case, switched on, over that use case's assets
    sensors = {s.name: s for s in defs.sensors or [] if isinstance(s, dg.AutomationConditionSensorDefinition)}
    assert set(sensors) == {"fleet_maintenance__automation", "machine_failure__automation"}
    assert {s.default_status for s in sensors.values()} == {dg.DefaultSensorStatus.RUNNING}
    targeted = sensors["machine_failure__automation"].asset_selection.resolve(defs.resolve_asset_graph())
    assert targeted == {dg.AssetKey(k.split("/")) for k in labels if k.startswith("machine_failure/")}
    # and so do the sources' crons, the scoring crons and the retraining sensor: nothing to switch on in the UI
    assert defs.schedules and {s.default_status for s in defs.schedules} == {dg.DefaultScheduleStatus.RUNNING}
    assert {s.default_status for s in defs.sensors or []} == {dg.DefaultSensorStatus.RUNNING}


def test_usecase_and_model_override_the_workspace_policy(tmp_path: Path) -> None:
    workspace = _copy_demo(tmp_path)
    settings = workspace / "foundation.yaml"
    settings.write_text(
        settings.read_text() + "automation:\n  policy: on_cron\n  cron: '0 6 * * *'\n  sensor_interval_s: 5\n"
    )
    usecase = workspace / "usecases" / "machine_failure" / "usecase.yaml"
    usecase.write_text(usecase.read_text() + "automation: {policy: manual}\n")
    model = workspace / "usecases" / "fleet_maintenance" / "ml" / "failure_risk.yaml"
    model.write_text(model.read_text() + "automation: {policy: eager}\n")
    defs = build_definitions(workspace)
    labels = _conditions(defs)
    assert labels["fleet_maintenance/marts/fct_truck_day"] == "on_cron(0 6 * * *, UTC)"  # the workspace default
    assert labels["fleet_maintenance/gold/published"] == "on_cron(0 6 * * *, UTC)"
    assert labels["fleet_maintenance/ml/failure_risk/predictions"] == "eager"  # the model's own
    assert labels["machine_failure/marts/fct_product_runs"] is None  # the use case says manual
    assert labels["machine_failure/ml/machine_failure/training_set"] is None
    # a manual model keeps its training cron as a plain schedule
    assert "machine_failure__machine_failure__training" in {s.name for s in defs.schedules or []}
    sensor = next(s for s in defs.sensors or [] if s.name == "fleet_maintenance__automation")
    assert sensor.minimum_interval_seconds == 5


def test_policy_resolution_innermost_wins() -> None:
    plan = AutomationPlan(
        default=AutomationSpec(policy="on_cron", cron="@daily"), usecases={"a": AutomationSpec(policy="manual")}
    )
    assert plan.for_usecase("b").policy == "on_cron"
    assert plan.for_usecase("a").policy == "manual"
    assert plan.for_model("a", AutomationSpec(policy="eager")).policy == "eager"
    assert plan.for_model("a", None).policy == "manual"


def _check(workspace: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["--workspace", str(workspace), "check", "--json"])
    return result.exit_code, json.loads(result.stdout)


def _plain(tmp_path: Path, settings: str, usecase_extra: str = "") -> Path:
    (tmp_path / "foundation.yaml").write_text(settings)
    sources = tmp_path / "usecases" / "plant" / "sources"
    sources.mkdir(parents=True)
    (tmp_path / "usecases" / "plant" / "usecase.yaml").write_text(
        "title: Plant\ndescription: A plant use case for tests\nowner: plant@example.com\n" + usecase_extra
    )
    (sources / "readings.yaml").write_text(
        "name: readings\ndescription: Sensor readings for the tests\nowner: data@example.com\nschedule: manual\n"
        "extract: {type: csv, path: landing/*.csv}\nload: {mode: append, on_new_files: true}\n"
    )
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.csv").write_text("id\n1\n")
    return tmp_path


def test_check_refuses_an_unknown_policy_in_foundation_yaml_with_file_line(tmp_path: Path) -> None:
    workspace = _plain(tmp_path, "state_dir: .foundation\nautomation:\n  policy: sometimes\n")
    code, report = _check(workspace)
    assert code == 1
    (error,) = [e for e in report["errors"] if e["field"] == "automation.policy"]
    assert Path(error["path"]).name == "foundation.yaml" and error["line"] == 3
    assert "'eager', 'on_cron' or 'manual'" in error["message"]


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ("automation: {policy: hourly}\n", "automation.policy", "'eager', 'on_cron' or 'manual'"),
        ("automation:\n  policy: on_cron\n", "automation", "policy: on_cron needs cron"),
        ("automation: {policy: on_cron, cron: 'every day'}\n", "automation.cron", "not a 5-field cron"),
    ],
)
def test_check_refuses_a_bad_usecase_policy_with_file_line(
    tmp_path: Path, extra: str, field: str, message: str
) -> None:
    workspace = _plain(tmp_path, "state_dir: .foundation\n", extra)
    code, report = _check(workspace)
    assert code == 1
    (error,) = [e for e in report["errors"] if e["severity"] == "error"]
    assert Path(error["path"]).name == "usecase.yaml"
    assert error["line"] == 4 and error["field"] == field
    assert message in error["message"]


def test_check_accepts_the_policies(tmp_path: Path) -> None:
    workspace = _plain(
        tmp_path,
        "state_dir: .foundation\nautomation: {policy: on_cron, cron: '0 6 * * *'}\n",
        "automation: {policy: eager}\n",
    )
    code, report = _check(workspace)
    assert code == 0, report


def test_a_partitioned_source_refreshes_what_reads_it_without_every_partition(tmp_path: Path) -> None:
    """Dagster's eager waits for every partition of a time-partitioned input since its start: loaded from one day
    on, such a source would never refresh its dbt models. Its missing partitions are not waited for."""
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    sources = tmp_path / "usecases" / "u" / "sources"
    sources.mkdir(parents=True)
    (sources / "ev.yaml").write_text(
        "name: ev\ndescription: events, one partition per day\nowner: a@b.co\nschedule: '0 1 * * *'\n"
        "extract: {type: csv, path: landing/ev*.csv}\nload: {mode: replace}\n"
        "partitions: {by: daily, column: ts, start: 2026-11-01}\n"
        "columns:\n  - {name: ts, type: timestamp, required: true}\n  - {name: v, type: double}\n"
    )
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "ev1.csv").write_text("ts,v\n2026-12-05 10:00:00,1\n")
    dbt = tmp_path / "dbt_project"
    shutil.copytree(REPO / "dbt_project" / "macros", dbt / "macros")
    (dbt / "dbt_project.yml").write_text(
        'name: foundation\nversion: "1.0.0"\nprofile: foundation\nconfig-version: 2\nmodel-paths: ["models"]\n'
        'macro-paths: ["macros", "{{ env_var(\'FOUNDATION_DBT_MACROS\') }}"]\n'
        "models:\n  foundation:\n    +materialized: table\n"
    )
    (dbt / "models" / "u" / "marts").mkdir(parents=True)
    (dbt / "models" / "u" / "marts" / "fct_ev.sql").write_text("select count(*) as n from {{ source('u', 'ev') }}\n")
    defs = build_definitions(tmp_path)
    bronze, mart = dg.AssetKey(["u", "bronze", "ev"]), dg.AssetKey(["u", "marts", "fct_ev"])
    checks = [c.name for a in defs.assets or [] for c in a.check_specs if c.asset_key == bronze]
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs, instance)
    assert first.get_num_requested(mart) == 0  # nothing landed yet
    for day in ("2026-12-04", "2026-12-05"):  # two days of a source that starts on 2026-11-01
        instance.report_runless_asset_event(dg.AssetMaterialization(bronze, partition=day))
        for name in checks:
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(asset_key=bronze, check_name=name, passed=True, partition=day)
            )
    second = dg.evaluate_automation_conditions(defs, instance, cursor=first.cursor)
    assert second.get_num_requested(mart) == 1
