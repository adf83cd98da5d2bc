"""KPI declarations: validation with file:line errors, `extends:` reuse, compilation to a dbt model."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from foundation.core.workspace import load_kpis
from foundation.engine.dbt.kpi_models import SPARK_TYPES, contract_columns, kpi_properties, simple_kpi_sql
from kpi_catalog.catalogue import Point, status_against_target, trend_of
from kpi_catalog.chart import history_svg

SIMPLE = """\
id: uptime
label: Uptime
description: Share of hours up.
owner: ops@example.com
unit: "%"
direction: higher
target: 99
alert: 95
dimensions: [site]
model: fct_hours
time: hour_at
expression: 100.0 * avg(case when up then 1 else 0 end)
"""


def _write(root: Path, usecase: str, name: str, text: str) -> Path:
    path = root / "usecases" / usecase / "kpis" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_simple_kpi_is_a_few_lines_and_validates(tmp_path: Path) -> None:
    _write(tmp_path, "plant", "uptime", SIMPLE)
    scan = load_kpis(tmp_path)
    assert scan.ok, [e.format() for e in scan.errors]
    (kpi,) = scan.kpis
    assert kpi.usecase == "plant"
    assert kpi.spec.model_name == "kpi_uptime"
    assert kpi.spec.grains == ["day", "week", "month"]
    assert kpi.spec.status == "draft"


def test_kpi_without_owner_or_unit_names_file_line_and_fix(tmp_path: Path) -> None:
    text = SIMPLE.replace("owner: ops@example.com\n", "").replace('unit: "%"\n', "")
    path = _write(tmp_path, "plant", "uptime", text)
    scan = load_kpis(tmp_path)
    assert not scan.ok
    messages = {e.field: e for e in scan.errors}
    assert set(messages) == {"owner", "unit"}
    for error in messages.values():
        assert error.path == path
        assert error.message == "required field is missing"
        assert "docs/kpis.md" in error.hint
    assert f"{path}:1: owner: required field is missing" in messages["owner"].format()


def test_invalid_values_point_at_their_line(tmp_path: Path) -> None:
    text = SIMPLE.replace("direction: higher", "direction: up").replace("alert: 95", "alert: 99.5")
    path = _write(tmp_path, "plant", "uptime", text)
    errors = load_kpis(tmp_path).errors
    direction = next(e for e in errors if e.field == "direction")
    assert direction.path == path and direction.line == 6
    assert "'higher'" in direction.message


def test_alert_better_than_target_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "plant", "uptime", SIMPLE.replace("alert: 95", "alert: 99.5"))
    (error,) = load_kpis(tmp_path).errors
    assert "alert 99.5 is better than target 99" in error.message


def test_extends_reuses_a_kpi_across_use_cases(tmp_path: Path) -> None:
    _write(tmp_path, "plant", "uptime", SIMPLE.replace("dimensions: [site]", "dimensions: [site]\nstatus: certified"))
    _write(
        tmp_path,
        "fleet",
        "truck_uptime",
        "id: truck_uptime\nextends: uptime\nlabel: Truck uptime\nowner: fleet@example.com\n"
        "model: fct_truck_hours\ntime: ts\ndimensions: [depot]\n",
    )
    scan = load_kpis(tmp_path)
    assert scan.ok, [e.format() for e in scan.errors]
    child = next(k for k in scan.kpis if k.spec.id == "truck_uptime")
    assert child.usecase == "fleet"
    assert child.spec.expression == "100.0 * avg(case when up then 1 else 0 end)"  # inherited
    assert (child.spec.unit, child.spec.direction, child.spec.target) == ("%", "higher", 99)
    assert (child.spec.model, child.spec.dimensions, child.spec.owner) == (
        "fct_truck_hours",
        ["depot"],
        "fleet@example.com",
    )
    assert child.spec.status == "draft"  # certification is not inherited


def test_extends_an_unknown_kpi_lists_the_known_ones(tmp_path: Path) -> None:
    _write(tmp_path, "plant", "uptime", SIMPLE)
    path = _write(tmp_path, "fleet", "other", "id: other\nextends: uptyme\n")
    (error,) = load_kpis(tmp_path).errors
    assert (error.path, error.line, error.field) == (path, 2, "extends")
    assert "uptime" in error.hint


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "plant", "uptime", SIMPLE)
    _write(tmp_path, "fleet", "uptime", SIMPLE)
    (error,) = load_kpis(tmp_path).errors
    assert "already declared" in error.message and "extends" in error.hint


def test_simple_kpi_compiles_to_grouping_sets_per_grain(tmp_path: Path) -> None:
    _write(tmp_path, "plant", "uptime", SIMPLE.replace("expression:", "filter: site <> 'lab'\nexpression:"))
    (kpi,) = load_kpis(tmp_path).kpis
    sql = simple_kpi_sql(kpi.spec)
    assert "{{ ref('fct_hours') }}" in sql
    assert "where site <> 'lab'" in sql
    # identifiers are quoted by the dbt target (DuckDB "site", Spark `site`), so one SQL text serves every engine
    assert sql.count("group by grouping sets ((period), (period, {{ adapter.quote('site') }}))") == 3
    assert "{{ kpi_dimensions_star(['site'], 'unknown') }}" in sql
    assert [c["name"] for c in contract_columns(kpi.spec)] == ["grain", "period", "site", "value"]
    assert [c["data_type"] for c in contract_columns(kpi.spec)] == ["varchar", "date", "varchar", "double"]
    assert [c["data_type"] for c in contract_columns(kpi.spec, SPARK_TYPES)] == ["string", "date", "string", "double"]
    properties = yaml.safe_load(kpi_properties([(kpi, "usecases/plant/kpis/uptime.yaml")]))
    (model,) = properties["models"]
    assert model["config"]["contract"] == {"enforced": True}
    assert model["config"]["meta"]["kpi"]["yaml"] == "usecases/plant/kpis/uptime.yaml"
    assert "sql" not in model["config"]["meta"]["kpi"]


def test_status_and_trend_follow_the_direction() -> None:
    assert status_against_target(99.5, "higher", 99, 95) == "on_target"
    assert status_against_target(97, "higher", 99, 95) == "off_target"
    assert status_against_target(90, "higher", 99, 95) == "alert"
    assert status_against_target(40, "lower", 24, 48) == "off_target"
    assert status_against_target(None, "lower", 24, 48) == "no_data"


def test_a_kpi_without_a_target_is_not_on_target() -> None:
    # "Runs at risk 475, target -" read "on target": with no target there is nothing to be on.
    assert status_against_target(475, "lower", None, None) == "no_target"
    assert status_against_target(475, "lower", None, 500) == "no_target"  # within its alert threshold
    assert status_against_target(520, "lower", None, 500) == "alert"  # an alert threshold alone still alerts
    points = [Point(date(2026, 1, d), v) for d, v in ((1, 10.0), (2, 12.0), (3, 20.0))]
    assert trend_of(points, "higher") == "improving"
    assert trend_of(points, "lower") == "worsening"


def test_chart_is_inline_svg_with_target_and_alert_lines() -> None:
    points = [Point(date(2026, 1, d), float(d)) for d in range(1, 6)] + [Point(date(2026, 1, 6), None)]
    svg = history_svg(points, target=4.0, alert=2.0, unit="%", label="Uptime <x>")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<circle") == 5
    assert 'class="target"' in svg and 'class="alert"' in svg
    assert "Uptime &lt;x&gt;" in svg
    assert "no data" in history_svg([], None, None, "%", "x")
