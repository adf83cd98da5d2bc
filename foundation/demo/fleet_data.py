"""Deterministic landing files for the demo use case ``fleet_maintenance``.

Brief: "As a truck owner, I want a dashboard that predicts engine failure in my truck fleet".

``generate_fleet_landing(root)`` writes, under ``root``::

    telemetry/telemetry_YYYY-MM-DD.csv[.gz]   one CSV per day, raw sensor column names; every 7th day gzip-compressed
    trucks.csv                                 the fleet (type, segment, model year, depot)
    maintenance/maintenance.ndjson             preventive and corrective maintenance, one JSON record a line
    failures/failures.json                     a JSON array of failures (the label to predict)

The data carries a learnable signal: older trucks and long-haul trucks fail more often, and in the 72 hours before
a failure engine temperature, vibration and coolant temperature ramp up while oil pressure ramps down. A corrective
maintenance follows every failure and resets the truck. Telemetry has realistic noise: about 0.5% empty sensor values
and about one bad row per 5000 (half ragged, half with an unparsable engine temperature), counted in
``FleetLanding.bad_rows``.

Everything is drawn from ``random.Random`` instances seeded from ``FleetSize.seed`` (one stream per truck and concern),
so the same size and seed always give byte-identical files, and a truck's history does not depend on the fleet size.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from foundation.demo.depot_page import write_depot_page

DEMO_USECASE = "fleet_maintenance"  # the use case whose landing files this writes

__all__ = [
    "START",
    "TELEMETRY_COLUMNS",
    "TRUCK_COLUMNS",
    "FleetLanding",
    "FleetSize",
    "generate_fleet_landing",
    "write_telemetry_csv",
]

START = datetime(2026, 1, 1)
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
TELEMETRY_COLUMNS = (
    "truck_id",
    "ts",
    "Engine Temp [C]",
    "Oil Pressure [kPa]",
    "Vibration [mm/s]",
    "RPM",
    "Coolant Temp [C]",
    "Mileage [km]",
)
TRUCK_COLUMNS = ("truck_id", "truck_type", "segment", "model_year", "depot_id")

FAILURES_PER_TRUCK_DAY = 1 / 60  # fleet average; each truck's rate is scaled by its hazard
PRE_FAILURE_HOURS = 72.0  # sensors drift during this window before a failure
MISSING_RATE = 0.005  # share of empty sensor values
BAD_ROW_EVERY = 5000  # about one bad telemetry row per this many rows
GZIP_EVERY_N_DAYS = 7

MODEL_YEARS = tuple(range(2012, 2026))
REFERENCE_YEAR = 2025
DEPOTS = tuple(f"DEP-{i:02d}" for i in range(1, 7))
SEGMENTS = ("long_haul", "regional", "urban")
SEGMENT_WEIGHTS = (0.4, 0.35, 0.25)
SEGMENT_HAZARD = {"long_haul": 1.6, "regional": 1.0, "urban": 0.75}
AGE_HAZARD = 0.09  # hazard multiplier exp(AGE_HAZARD * age in years)
TRUCK_TYPES = {  # segment -> (truck types, weights)
    "long_haul": (("tractor", "rigid"), (0.85, 0.15)),
    "regional": (("tractor", "rigid", "van"), (0.35, 0.5, 0.15)),
    "urban": (("rigid", "van"), (0.35, 0.65)),
}
# segment -> (average speed km/h, P(driving) in the working day, P(driving) at night, working day hours [start, end))
DUTY = {
    "long_haul": (78.0, 0.85, 0.4, (5, 22)),
    "regional": (62.0, 0.75, 0.08, (6, 20)),
    "urban": (28.0, 0.65, 0.03, (7, 19)),
}
COMPONENTS = ("engine", "cooling", "lubrication")
COMPONENT_WEIGHTS = (0.45, 0.3, 0.25)
SEVERITY_WEIGHTS = (0.5, 0.35, 0.15)
# component -> drift at the moment of failure: (engine temp C, oil pressure kPa, vibration mm/s, coolant C)
DRIFT = {
    "engine": (20.0, -50.0, 2.5, 8.0),
    "cooling": (18.0, -25.0, 1.0, 16.0),
    "lubrication": (14.0, -110.0, 2.0, 5.0),
}
REPAIR_COST_EUR = {"engine": 2600.0, "cooling": 1300.0, "lubrication": 900.0}


@dataclass(frozen=True)
class FleetSize:
    """How much demo data to generate: ``trucks * days * readings_per_day`` telemetry rows."""

    trucks: int = 40
    days: int = 60
    readings_per_day: int = 24  # hourly telemetry
    seed: int = 7

    def __post_init__(self) -> None:
        if self.trucks < 1 or self.days < 1:
            raise ValueError(f"FleetSize needs trucks >= 1 and days >= 1, got trucks={self.trucks} days={self.days}")
        if self.readings_per_day < 1 or 86400 % self.readings_per_day:
            raise ValueError(
                f"FleetSize.readings_per_day must divide 86400 (e.g. 24 for hourly), got {self.readings_per_day}"
            )


@dataclass(frozen=True)
class FleetLanding:
    """What ``generate_fleet_landing`` wrote, for reporting and tests."""

    root: Path
    files: dict[str, list[Path]]  # keys: "telemetry", "trucks", "maintenance", "failures"
    rows: dict[str, int]  # data rows written per key (bad rows included)
    bad_rows: dict[str, int]  # deliberately bad rows per key (ragged rows / unparsable values)
    glitch_rows: dict[str, int] = field(default_factory=dict)  # parse fine, break a quality rule (999.9 °C)


@dataclass(frozen=True)
class _Truck:
    """A truck's static attributes and sensor baseline."""

    truck_id: str
    truck_type: str
    segment: str
    model_year: int
    depot_id: str
    engine_temp: float
    oil_pressure: float
    vibration: float
    coolant: float
    start_mileage: float

    @property
    def hazard(self) -> float:
        """Relative failure hazard (1.0 is the fleet average)."""
        return _raw_hazard(self.segment, self.model_year) / _MEAN_HAZARD


def _raw_hazard(segment: str, model_year: int) -> float:
    return SEGMENT_HAZARD[segment] * math.exp(AGE_HAZARD * (REFERENCE_YEAR - model_year))


# Expected raw hazard over the distributions trucks are drawn from (not over one fleet: a truck's failure rate does not
# depend on which other trucks are in the fleet).
_MEAN_HAZARD = sum(
    w * _raw_hazard(s, y) / len(MODEL_YEARS)
    for s, w in zip(SEGMENTS, SEGMENT_WEIGHTS, strict=True)
    for y in MODEL_YEARS
)


def _make_truck(seed: int, index: int) -> _Truck:
    """Draw truck ``index`` (0-based) from its own random stream."""
    rng = random.Random(f"fleet:{seed}:truck:{index}")
    segment = rng.choices(SEGMENTS, SEGMENT_WEIGHTS)[0]
    types, weights = TRUCK_TYPES[segment]
    model_year = rng.choice(MODEL_YEARS)
    age = REFERENCE_YEAR - model_year
    yearly_km = {"long_haul": 120_000.0, "regional": 70_000.0, "urban": 35_000.0}[segment]
    return _Truck(
        truck_id=f"TRK-{index + 1:04d}",
        truck_type=rng.choices(types, weights)[0],
        segment=segment,
        model_year=model_year,
        depot_id=rng.choice(DEPOTS),
        engine_temp=rng.uniform(87.0, 90.5) + 0.12 * age,
        oil_pressure=rng.uniform(345.0, 385.0) - 1.5 * age,
        vibration=rng.uniform(2.8, 3.4) + 0.04 * age,
        coolant=rng.uniform(82.5, 86.5) + 0.1 * age,
        start_mileage=round((age + rng.uniform(0.2, 1.0)) * yearly_km * rng.uniform(0.8, 1.2), 1),
    )


@dataclass(frozen=True)
class _Failure:
    at_h: float  # hours since START
    ramp_start_h: float  # sensors drift from here (72 h before, or the end of the previous workshop visit)
    component: str
    severity: int


@dataclass(frozen=True)
class _Maintenance:
    start_h: float
    end_h: float
    kind: str
    cost_eur: float


@dataclass
class _History:
    """A truck's failures and workshop visits over the horizon."""

    failures: list[_Failure] = field(default_factory=list)
    maintenance: list[_Maintenance] = field(default_factory=list)


def _to_minute(hours: float) -> float:
    return round(hours * 60.0) / 60.0


def _schedule(truck: _Truck, seed: int, index: int, horizon_h: float) -> _History:
    """Failures (a Poisson process at the truck's hazard) and maintenance: preventive every 20-30 days, corrective
    after each failure (which resets the truck)."""
    rng = random.Random(f"fleet:{seed}:events:{index}")
    rate_per_h = FAILURES_PER_TRUCK_DAY / 24.0 * truck.hazard
    history = _History()
    t = 0.0  # the truck is healthy and on the road from t
    next_pm = _to_minute(rng.uniform(1.0, 30.0) * 24.0)
    while True:
        fail_at = _to_minute(t + 2.0 + rng.expovariate(rate_per_h))
        if next_pm < min(fail_at, horizon_h):
            end = _to_minute(next_pm + rng.uniform(2.0, 6.0))
            cost = round(rng.uniform(250.0, 650.0), 2)
            history.maintenance.append(_Maintenance(next_pm, end, "preventive", cost))
            t = end
            next_pm = _to_minute(end + rng.uniform(20.0, 30.0) * 24.0)
            continue  # memoryless: redraw the time to failure from the end of the visit
        if fail_at >= horizon_h:
            return history
        component = rng.choices(COMPONENTS, COMPONENT_WEIGHTS)[0]
        severity = rng.choices((1, 2, 3), SEVERITY_WEIGHTS)[0]
        history.failures.append(_Failure(fail_at, max(fail_at - PRE_FAILURE_HOURS, t), component, severity))
        start = _to_minute(fail_at + rng.uniform(0.5, 4.0))
        end = _to_minute(start + rng.uniform(6.0, 18.0) * severity)
        cost = round(REPAIR_COST_EUR[component] * severity * rng.uniform(0.8, 1.3), 2)
        history.maintenance.append(_Maintenance(start, end, "corrective", cost))
        t = end
        next_pm = _to_minute(end + rng.uniform(20.0, 30.0) * 24.0)


class _TelemetrySim:
    """Produces one truck's readings in time order (call ``reading`` with non-decreasing times)."""

    __slots__ = (
        "_down",
        "_down_i",
        "_failure_i",
        "_failures",
        "day_hours",
        "mileage",
        "p_day",
        "p_night",
        "rng",
        "speed",
        "truck",
    )

    def __init__(self, truck: _Truck, rng: random.Random, history: _History | None = None) -> None:
        self.truck = truck
        self.rng = rng
        self.mileage = truck.start_mileage
        self.speed, self.p_day, self.p_night, self.day_hours = DUTY[truck.segment]
        history = history or _History()
        self._failures = history.failures
        self._failure_i = 0
        # Off the road (idling in the workshop) from a failure to the end of its repair, and during preventive visits.
        corrective = [m for m in history.maintenance if m.kind == "corrective"]
        down = [(f.at_h, m.end_h) for f, m in zip(history.failures, corrective, strict=True)]
        down += [(m.start_h, m.end_h) for m in history.maintenance if m.kind == "preventive"]
        self._down = sorted(down)
        self._down_i = 0

    def _in_workshop(self, t_h: float) -> bool:
        while self._down_i < len(self._down) and self._down[self._down_i][1] <= t_h:
            self._down_i += 1
        return self._down_i < len(self._down) and self._down[self._down_i][0] <= t_h

    def _drift(self, t_h: float) -> tuple[float, float, float, float] | None:
        while self._failure_i < len(self._failures) and self._failures[self._failure_i].at_h <= t_h:
            self._failure_i += 1
        if self._failure_i == len(self._failures):
            return None
        failure = self._failures[self._failure_i]
        if t_h < failure.ramp_start_h:
            return None
        closeness = 1.0 - (failure.at_h - t_h) / PRE_FAILURE_HOURS  # 0 at 72 h before, 1 at the failure
        scale = closeness * (0.75 + 0.125 * failure.severity)
        temp, oil, vib, coolant = DRIFT[failure.component]
        return temp * scale, oil * scale, vib * scale, coolant * scale

    def reading(self, ts: str, t_h: float, hour: int, step_h: float) -> list[str]:
        """One telemetry row (all fields as strings; empty string for a missing value)."""
        rng, truck = self.rng, self.truck
        gauss = rng.gauss
        if self._in_workshop(t_h):
            driving = False
        else:
            start, end = self.day_hours
            driving = rng.random() < (self.p_day if start <= hour < end else self.p_night)
        if driving:
            temp = truck.engine_temp + gauss(0.0, 1.2)
            oil = truck.oil_pressure + gauss(0.0, 8.0)
            vib = truck.vibration + gauss(0.0, 0.25)
            rpm = rng.uniform(1200.0, 1800.0)
            coolant = truck.coolant + gauss(0.0, 1.0)
            self.mileage += self.speed * step_h * rng.uniform(0.6, 1.15)
        else:
            temp = truck.engine_temp - 3.0 + gauss(0.0, 1.0)
            oil = truck.oil_pressure - 40.0 + gauss(0.0, 6.0)
            vib = truck.vibration * 0.7 + gauss(0.0, 0.15)
            rpm = rng.uniform(600.0, 800.0)
            coolant = truck.coolant - 2.0 + gauss(0.0, 0.8)
        drift = self._drift(t_h)
        if drift is not None:
            temp += drift[0]
            oil += drift[1]
            vib += drift[2]
            coolant += drift[3]
        row = [
            truck.truck_id,
            ts,
            f"{temp:.1f}",
            f"{oil:.1f}",
            f"{max(vib, 0.1):.2f}",
            f"{rpm:.0f}",
            f"{coolant:.1f}",
            f"{self.mileage:.1f}",
        ]
        if rng.random() < 5 * MISSING_RATE:  # one of the five sensors is empty
            row[2 + rng.randrange(5)] = ""
        return row


@contextmanager
def _atomic_text_writer(path: Path, compress: bool) -> Iterator[TextIO]:
    """Write text to a hidden temporary file next to ``path`` (gzip with a fixed mtime, so bytes are reproducible), then
    rename it over ``path``: readers never see a half-written file, and a failure leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as raw:
            binary = (
                gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, compresslevel=6, mtime=0) if compress else raw
            )
            with io.TextIOWrapper(binary, encoding="utf-8", newline="") as text:
                yield text
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _ts(moment: datetime) -> str:
    return moment.strftime(TS_FORMAT)


def _at(hours: float) -> str:
    return _ts(START + timedelta(minutes=round(hours * 60.0)))


def _bad_row_plan(total_rows: int, seed: int) -> dict[int, str]:
    """Which telemetry rows (global index) are deliberately bad, and how: 'ragged' or 'unparsable'."""
    count = round(total_rows / BAD_ROW_EVERY)
    if total_rows > 2000:
        count = max(count, 1)
    rng = random.Random(f"fleet:{seed}:bad-rows")
    positions = sorted(rng.sample(range(total_rows), count))
    rng.shuffle(positions)
    unparsable = count // 2
    return {p: ("unparsable" if i < unparsable else "ragged") for i, p in enumerate(positions)}


GLITCH_ROW_EVERY = 10000  # sensor glitches: a valid number far outside the physical range
GLITCH_ENGINE_TEMP = "999.9"


def _glitch_plan(total_rows: int, seed: int, taken: set[int]) -> set[int]:
    """Telemetry rows (global index) whose engine temperature is a sensor glitch, apart from the bad rows."""
    count = max(round(total_rows / GLITCH_ROW_EVERY), 1 if total_rows > 2000 else 0)
    rng = random.Random(f"fleet:{seed}:glitches")
    free = [i for i in range(total_rows) if i not in taken] if total_rows < 50_000 else None
    chosen: set[int] = set()
    while len(chosen) < count:
        position = rng.choice(free) if free is not None else rng.randrange(total_rows)
        if position not in taken:
            chosen.add(position)
    return chosen


def _write_telemetry(directory: Path, size: FleetSize, sims: list[_TelemetrySim]) -> tuple[list[Path], int, int, int]:
    step_s = 86400 // size.readings_per_day
    step_h = step_s / 3600.0
    total = size.trucks * size.days * size.readings_per_day
    plan = _bad_row_plan(total, size.seed)
    glitches = _glitch_plan(total, size.seed, set(plan))
    paths: list[Path] = []
    row_index = 0
    for day in range(size.days):
        compress = (day + 1) % GZIP_EVERY_N_DAYS == 0
        name = f"telemetry_{START + timedelta(days=day):%Y-%m-%d}.csv" + (".gz" if compress else "")
        path = directory / name
        with _atomic_text_writer(path, compress) as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(TELEMETRY_COLUMNS)
            for k in range(size.readings_per_day):
                seconds = (day * size.readings_per_day + k) * step_s
                ts = _ts(START + timedelta(seconds=seconds))
                t_h = seconds / 3600.0
                hour = (seconds // 3600) % 24
                for sim in sims:
                    row = sim.reading(ts, t_h, hour, step_h)
                    kind = plan.get(row_index)
                    if kind == "ragged":
                        row = row[:-1]
                    elif kind == "unparsable":
                        row[2] = "ERR"
                    elif row_index in glitches:
                        row[2] = GLITCH_ENGINE_TEMP
                    writer.writerow(row)
                    row_index += 1
        paths.append(path)
    for stale in directory.glob("telemetry_*.csv*"):  # days left over from a larger earlier run
        if stale not in paths:
            stale.unlink()
    return paths, row_index, len(plan), len(glitches)


def generate_fleet_landing(root: Path, size: FleetSize = FleetSize()) -> FleetLanding:
    """Write the ``fleet_maintenance`` landing files under ``root`` (idempotent: same size and seed, same bytes)."""
    root = Path(root)
    horizon_h = size.days * 24.0
    trucks = [_make_truck(size.seed, i) for i in range(size.trucks)]
    histories = [_schedule(truck, size.seed, i, horizon_h) for i, truck in enumerate(trucks)]
    sims = [
        _TelemetrySim(truck, random.Random(f"fleet:{size.seed}:telemetry:{i}"), history)
        for i, (truck, history) in enumerate(zip(trucks, histories, strict=True))
    ]

    telemetry_paths, telemetry_rows, telemetry_bad, telemetry_glitches = _write_telemetry(
        root / "telemetry", size, sims
    )

    trucks_path = root / "trucks.csv"
    with _atomic_text_writer(trucks_path, compress=False) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TRUCK_COLUMNS)
        for t in trucks:
            writer.writerow([t.truck_id, t.truck_type, t.segment, t.model_year, t.depot_id])

    maintenance = sorted(
        ((m.start_h, t.truck_id, m) for t, h in zip(trucks, histories, strict=True) for m in h.maintenance),
        key=lambda item: (item[0], item[1]),
    )
    maintenance_path = root / "maintenance" / "maintenance.ndjson"
    with _atomic_text_writer(maintenance_path, compress=False) as handle:
        for n, (_, truck_id, m) in enumerate(maintenance, start=1):
            record = {
                "maintenance_id": f"MNT-{n:06d}",
                "truck_id": truck_id,
                "started_at": _at(m.start_h),
                "ended_at": _at(m.end_h),
                "kind": m.kind,
                "cost_eur": m.cost_eur,
            }
            handle.write(json.dumps(record) + "\n")

    failures = sorted(
        ((f.at_h, t.truck_id, f) for t, h in zip(trucks, histories, strict=True) for f in h.failures),
        key=lambda item: (item[0], item[1]),
    )
    failure_records = [
        {
            "failure_id": f"FLR-{n:06d}",
            "truck_id": truck_id,
            "failed_at": _at(f.at_h),
            "component": f.component,
            "severity": f.severity,
        }
        for n, (_, truck_id, f) in enumerate(failures, start=1)
    ]
    failures_path = root / "failures" / "failures.json"
    with _atomic_text_writer(failures_path, compress=False) as handle:
        handle.write(json.dumps(failure_records, indent=2) + "\n")

    write_depot_page(root, DEPOTS)  # the `depots` source scrapes it (html_table) while `foundation demo` serves it

    return FleetLanding(
        root=root,
        files={
            "telemetry": telemetry_paths,
            "trucks": [trucks_path],
            "maintenance": [maintenance_path],
            "failures": [failures_path],
        },
        rows={
            "telemetry": telemetry_rows,
            "trucks": len(trucks),
            "maintenance": len(maintenance),
            "failures": len(failure_records),
        },
        bad_rows={"telemetry": telemetry_bad, "trucks": 0, "maintenance": 0, "failures": 0},
        glitch_rows={"telemetry": telemetry_glitches},
    )


def write_telemetry_csv(path: Path, rows: int, seed: int = 7, trucks: int = 1000, gzip_output: bool = False) -> int:
    """Write exactly `rows` telemetry rows (same columns as the demo's telemetry, clean: no bad rows) to one CSV file,
    streaming (constant memory: write row by row, never build the list), for benchmarks. Returns the row count.

    Rows are hourly readings of ``trucks`` healthy trucks from 2026-01-01 (all trucks for one hour, then the next hour),
    with the demo's ~0.5% empty sensor values; ``gzip_output`` gzip-compresses the file whatever its suffix."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if trucks < 1:
        raise ValueError(f"trucks must be >= 1, got {trucks}")
    sims = [_TelemetrySim(_make_truck(seed, i), random.Random(f"fleet:{seed}:telemetry:{i}")) for i in range(trucks)]
    written = 0
    step = 0
    with _atomic_text_writer(Path(path), gzip_output) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TELEMETRY_COLUMNS)
        while written < rows:
            ts = _ts(START + timedelta(hours=step))
            for sim in sims[: rows - written]:
                writer.writerow(sim.reading(ts, float(step), step % 24, 1.0))
            written += min(trucks, rows - written)
            step += 1
    return written
