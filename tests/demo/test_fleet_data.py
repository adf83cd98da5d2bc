"""Tests for the fleet_maintenance demo data generator: determinism, sizes, noise and the failure signal."""

from __future__ import annotations

import csv
import gzip
import io
import json
import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from foundation.demo.fleet_data import (
    TELEMETRY_COLUMNS,
    FleetLanding,
    FleetSize,
    generate_fleet_landing,
    write_telemetry_csv,
)

SMALL = FleetSize(trucks=6, days=9, readings_per_day=24, seed=3)
SENSORS = TELEMETRY_COLUMNS[2:7]


def read_csv(path: Path) -> list[list[str]]:
    """All rows of a (possibly gzip-compressed) CSV file, header included."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def telemetry_rows(landing: FleetLanding) -> list[list[str]]:
    rows: list[list[str]] = []
    for path in landing.files["telemetry"]:
        header, *body = read_csv(path)
        assert tuple(header) == TELEMETRY_COLUMNS
        rows.extend(body)
    return rows


def is_bad(row: list[str]) -> bool:
    """Ragged (wrong field count) or with a value that does not parse as a number."""
    if len(row) != len(TELEMETRY_COLUMNS):
        return True
    try:
        [float(v) for v in row[2:] if v != ""]
    except ValueError:
        return True
    return False


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def default_landing(tmp_path_factory: pytest.TempPathFactory) -> FleetLanding:
    return generate_fleet_landing(tmp_path_factory.mktemp("fleet_default"))


def test_same_seed_gives_byte_identical_files_and_rerun_is_idempotent(tmp_path: Path) -> None:
    first = generate_fleet_landing(tmp_path / "a", SMALL)
    generate_fleet_landing(tmp_path / "b", SMALL)
    expected = snapshot(tmp_path / "a")
    gzipped = [data for name, data in expected.items() if name.endswith(".csv.gz")]
    assert gzipped and all(data[4:8] == bytes(4) for data in gzipped)  # gzip header mtime 0: same bytes on any day
    assert snapshot(tmp_path / "b") == expected

    again = generate_fleet_landing(tmp_path / "a", SMALL)  # over existing files
    assert snapshot(tmp_path / "a") == expected
    assert again.rows == first.rows and again.bad_rows == first.bad_rows

    generate_fleet_landing(tmp_path / "c", FleetSize(trucks=6, days=9, readings_per_day=24, seed=4))
    assert snapshot(tmp_path / "c") != expected


def test_rerun_with_fewer_days_leaves_no_stale_telemetry(tmp_path: Path) -> None:
    generate_fleet_landing(tmp_path, SMALL)
    smaller = generate_fleet_landing(tmp_path, FleetSize(trucks=6, days=3, seed=3))
    assert sorted((tmp_path / "telemetry").iterdir()) == sorted(smaller.files["telemetry"])


def test_row_counts_match_the_size(tmp_path: Path) -> None:
    size = FleetSize(trucks=5, days=15, readings_per_day=12, seed=11)
    landing = generate_fleet_landing(tmp_path, size)

    telemetry = landing.files["telemetry"]
    assert len(telemetry) == size.days
    assert [p.name for p in telemetry[:2]] == ["telemetry_2026-01-01.csv", "telemetry_2026-01-02.csv"]
    assert [p.name for p in telemetry if p.suffix == ".gz"] == [
        "telemetry_2026-01-07.csv.gz",
        "telemetry_2026-01-14.csv.gz",
    ]
    assert sorted(tmp_path.glob("telemetry/telemetry_*.csv*")) == sorted(telemetry)
    for path in telemetry:  # every file holds one reading per truck per step of its own day
        day = path.name.removeprefix("telemetry_")[:10]
        _, *body = read_csv(path)
        assert len(body) == size.trucks * size.readings_per_day
        assert {row[1][:10] for row in body} == {day}

    rows = telemetry_rows(landing)
    assert len(rows) == landing.rows["telemetry"] == size.trucks * size.days * size.readings_per_day
    assert {row[0] for row in rows} == {f"TRK-{i:04d}" for i in range(1, size.trucks + 1)}
    assert sorted({row[1] for row in rows})[:3] == ["2026-01-01 00:00:00", "2026-01-01 02:00:00", "2026-01-01 04:00:00"]

    header, *trucks = read_csv(tmp_path / "trucks.csv")
    assert header == ["truck_id", "truck_type", "segment", "model_year", "depot_id"]
    assert len(trucks) == landing.rows["trucks"] == size.trucks

    maintenance = (tmp_path / "maintenance" / "maintenance.ndjson").read_text().splitlines()
    assert len(maintenance) == landing.rows["maintenance"] > 0
    failures = json.loads((tmp_path / "failures" / "failures.json").read_text())
    assert len(failures) == landing.rows["failures"]


def test_bad_rows_are_present_and_counted(default_landing: FleetLanding, tmp_path: Path) -> None:
    rows = telemetry_rows(default_landing)
    bad = [row for row in rows if is_bad(row)]
    ragged = [row for row in bad if len(row) != len(TELEMETRY_COLUMNS)]
    unparsable = [row for row in bad if len(row) == len(TELEMETRY_COLUMNS)]

    assert len(bad) == default_landing.bad_rows["telemetry"] == round(len(rows) / 5000)
    assert ragged and unparsable and abs(len(ragged) - len(unparsable)) <= 1
    assert all(row[2] == "ERR" for row in unparsable)
    assert all(default_landing.bad_rows[key] == 0 for key in ("trucks", "maintenance", "failures"))

    # A small landing over 2000 rows still gets at least one bad row.
    tiny = generate_fleet_landing(tmp_path, FleetSize(trucks=3, days=30))
    assert tiny.rows["telemetry"] == 2160 and tiny.bad_rows["telemetry"] == 1


def test_about_half_a_percent_of_sensor_values_are_empty(default_landing: FleetLanding) -> None:
    rows = [row for row in telemetry_rows(default_landing) if not is_bad(row)]
    empty = sum(1 for row in rows for value in row[2:7] if value == "")
    share = empty / (len(rows) * len(SENSORS))
    assert 0.003 < share < 0.008
    assert all(row[0] and row[1] and row[7] for row in rows)  # keys and mileage are never empty


def test_values_are_plausible_and_mileage_never_decreases(default_landing: FleetLanding) -> None:
    mileage: dict[str, list[float]] = defaultdict(list)
    healthy_temps: list[float] = []
    for row in telemetry_rows(default_landing):
        if is_bad(row):
            continue
        values = dict(zip(TELEMETRY_COLUMNS, row, strict=True))
        mileage[row[0]].append(float(values["Mileage [km]"]))
        if values["RPM"]:
            assert 600 <= float(values["RPM"]) <= 1800
        if values["Engine Temp [C]"] and values["Engine Temp [C]"] != "999.9":  # planted sensor glitches
            healthy_temps.append(float(values["Engine Temp [C]"]))
        if values["Oil Pressure [kPa]"]:
            assert 150 < float(values["Oil Pressure [kPa]"]) < 450
    assert all(series == sorted(series) and series[-1] > series[0] for series in mileage.values())
    assert 84 < statistics.median(healthy_temps) < 93
    assert max(healthy_temps) < 125


def test_failures_and_maintenance_are_consistent(default_landing: FleetLanding) -> None:
    root = default_landing.root
    failures = json.loads((root / "failures" / "failures.json").read_text())
    maintenance = [json.loads(line) for line in (root / "maintenance" / "maintenance.ndjson").read_text().splitlines()]
    size = FleetSize()

    per_truck_per_60_days = len(failures) / size.trucks * 60 / size.days
    assert 0.5 <= per_truck_per_60_days <= 1.6
    assert [f["failure_id"] for f in failures] == [f"FLR-{i:06d}" for i in range(1, len(failures) + 1)]
    assert {f["component"] for f in failures} <= {"engine", "cooling", "lubrication"}
    assert {f["severity"] for f in failures} <= {1, 2, 3}
    assert [m["maintenance_id"] for m in maintenance] == [f"MNT-{i:06d}" for i in range(1, len(maintenance) + 1)]
    assert {m["kind"] for m in maintenance} == {"preventive", "corrective"}

    corrective = [m for m in maintenance if m["kind"] == "corrective"]
    assert len(corrective) == len(failures)
    for failure in failures:  # a corrective maintenance starts within hours of each failure
        failed_at = datetime.fromisoformat(failure["failed_at"])
        assert any(
            m["truck_id"] == failure["truck_id"]
            and timedelta(0) <= datetime.fromisoformat(m["started_at"]) - failed_at <= timedelta(hours=4)
            for m in corrective
        )
    for m in maintenance:
        assert m["started_at"] < m["ended_at"] and m["cost_eur"] > 0

    preventive: dict[str, list[datetime]] = defaultdict(list)
    for m in maintenance:
        if m["kind"] == "preventive":
            preventive[m["truck_id"]].append(datetime.fromisoformat(m["started_at"]))
    assert len(preventive) >= size.trucks * 0.9  # nearly every truck gets serviced in 60 days
    gaps = [(b - a).days for starts in preventive.values() for a, b in pairwise(starts)]
    assert gaps and min(gaps) >= 20


def test_sensors_signal_upcoming_failures(default_landing: FleetLanding) -> None:
    """In the 48 h before a failure engine temperature and vibration are higher, oil pressure lower, than elsewhere."""
    failures_by_truck: dict[str, list[datetime]] = defaultdict(list)
    for failure in json.loads((default_landing.root / "failures" / "failures.json").read_text()):
        failures_by_truck[failure["truck_id"]].append(datetime.fromisoformat(failure["failed_at"]))
    assert len(failures_by_truck) >= 10

    window = timedelta(hours=48)
    before: dict[str, list[float]] = defaultdict(list)
    elsewhere: dict[str, list[float]] = defaultdict(list)
    for row in telemetry_rows(default_landing):
        if is_bad(row):
            continue
        ts = datetime.fromisoformat(row[1])
        near = any(timedelta(0) < f - ts <= window for f in failures_by_truck.get(row[0], ()))
        for column, value in zip(TELEMETRY_COLUMNS[2:5], row[2:5], strict=True):
            if value:
                (before if near else elsewhere)[column].append(float(value))

    def gap(column: str) -> float:
        return statistics.fmean(before[column]) - statistics.fmean(elsewhere[column])

    assert len(before["Engine Temp [C]"]) > 500
    assert gap("Engine Temp [C]") > 5.0
    assert gap("Vibration [mm/s]") > 0.5
    assert gap("Oil Pressure [kPa]") < -15.0


def test_failure_rate_follows_age_and_segment(tmp_path: Path) -> None:
    """Older trucks and long-haul trucks fail more often (fewer readings per truck keeps this fast)."""
    landing = generate_fleet_landing(tmp_path, FleetSize(trucks=300, days=120, readings_per_day=1, seed=5))
    _, *trucks = read_csv(tmp_path / "trucks.csv")
    failures = json.loads((tmp_path / "failures" / "failures.json").read_text())
    count: dict[str, int] = defaultdict(int)
    for failure in failures:
        count[failure["truck_id"]] += 1

    def rate(selected: list[list[str]]) -> float:
        return sum(count[t[0]] for t in selected) / len(selected)

    assert landing.rows["failures"] == len(failures)
    assert rate([t for t in trucks if int(t[3]) <= 2016]) > 1.3 * rate([t for t in trucks if int(t[3]) >= 2021])
    assert rate([t for t in trucks if t[2] == "long_haul"]) > 1.3 * rate([t for t in trucks if t[2] == "urban"])


@pytest.mark.parametrize("gzip_output", [False, True])
def test_write_telemetry_csv_writes_exactly_the_rows_asked(tmp_path: Path, gzip_output: bool) -> None:
    path = tmp_path / ("bench.csv.gz" if gzip_output else "bench.csv")
    assert write_telemetry_csv(path, 2_345, seed=1, trucks=100, gzip_output=gzip_output) == 2_345
    header, *body = read_csv(path)
    assert tuple(header) == TELEMETRY_COLUMNS
    assert len(body) == 2_345
    assert not any(is_bad(row) for row in body)
    assert {row[0] for row in body} == {f"TRK-{i:04d}" for i in range(1, 101)}
    assert body[-1][1] == "2026-01-01 23:00:00"  # 23 full hours of 100 trucks, then 45 rows of the 24th
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind

    other = tmp_path / "again" / path.name
    write_telemetry_csv(other, 2_345, seed=1, trucks=100, gzip_output=gzip_output)
    assert other.read_bytes() == path.read_bytes()


def test_write_telemetry_csv_with_zero_rows_writes_the_header_only(tmp_path: Path) -> None:
    assert write_telemetry_csv(tmp_path / "empty.csv", 0) == 0
    assert read_csv(tmp_path / "empty.csv") == [list(TELEMETRY_COLUMNS)]
    with pytest.raises(ValueError, match="rows"):
        write_telemetry_csv(tmp_path / "bad.csv", -1)


def test_invalid_size_is_refused() -> None:
    with pytest.raises(ValueError, match="readings_per_day"):
        FleetSize(readings_per_day=7)
    with pytest.raises(ValueError, match="trucks"):
        FleetSize(trucks=0)


def test_sensor_glitches_parse_but_break_the_range_rule(default_landing: FleetLanding) -> None:
    """Rows for the quality rules to quarantine: valid numbers, physically impossible (999.9 °C)."""
    import gzip as gz

    glitches = 0
    for path in default_landing.files["telemetry"]:
        opener = gz.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            glitches += sum(1 for line in handle if ",999.9," in line)
    assert glitches == default_landing.glitch_rows["telemetry"] == round(57_600 / 10_000)
