"""Load on file arrival: the cursor (path + size + mtime), one run per batch, the sensor on real files."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from foundation.dagster_defs import build_definitions, file_sensors
from foundation.dagster_defs.file_sensors import decode_cursor, encode_cursor, new_files
from foundation.specs.source import SourceSpec

S = 1_000_000_000


def test_new_files_are_the_settled_new_or_changed_ones() -> None:
    previous = {"a.csv": (10, 1 * S), "b.csv": (20, 2 * S)}
    listing = {
        "a.csv": (10, 1 * S),  # unchanged
        "b.csv": (25, 3 * S),  # grew
        "c.csv": (5, 4 * S),  # new
        "d.csv": (7, 99 * S),  # still being written (1 s old)
    }
    batch, cursor = new_files(previous, listing, now_ns=100 * S, settle_ns=2 * S)
    assert batch == ["b.csv", "c.csv"]
    assert cursor == {"a.csv": (10, 1 * S), "b.csv": (25, 3 * S), "c.csv": (5, 4 * S)}  # d.csv: next time
    again, _ = new_files(cursor, {**listing, "d.csv": (9, 99 * S)}, now_ns=102 * S, settle_ns=2 * S)
    assert again == ["d.csv"]
    assert decode_cursor(encode_cursor(cursor)) == cursor
    assert decode_cursor(None) == {}


def test_a_file_settling_keeps_what_the_cursor_knew_of_it() -> None:
    previous = {"a.csv": (10, 1 * S)}
    batch, cursor = new_files(previous, {"a.csv": (30, 99 * S)}, now_ns=100 * S, settle_ns=2 * S)
    assert batch == [] and cursor == previous  # rewritten just now: not yet, but not forgotten either


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\nautomation: {file_sensor_interval_s: 5}\n")
    sources = tmp_path / "usecases" / "shop" / "sources"
    sources.mkdir(parents=True)
    (sources / "orders.yaml").write_text(
        "name: orders\ndescription: Orders dropped by the shop\nowner: shop@example.com\nschedule: manual\n"
        "extract: {type: csv, path: landing/orders/*.csv}\nload: {mode: append, on_new_files: true}\n"
    )
    (sources / "stock.yaml").write_text(
        "name: stock\ndescription: Stock levels, hourly\nowner: shop@example.com\nschedule: '@hourly'\n"
        "extract: {type: csv, path: landing/stock.csv}\nload: {mode: replace}\n"
    )
    (tmp_path / "landing" / "orders").mkdir(parents=True)
    return tmp_path


def _land(path: Path, text: str, age_s: float = 60) -> None:
    path.write_text(text)
    old = path.stat().st_mtime - age_s
    os.utime(path, (old, old))


def test_sensor_requests_one_run_per_batch_of_new_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = _workspace(tmp_path)
    defs = build_definitions(workspace)
    sensors = {s.name: s for s in defs.sensors or []}
    assert "shop__stock__new_files" not in sensors  # only sources that ask for it
    sensor = sensors["shop__orders__new_files"]
    assert sensor.minimum_interval_seconds == 5
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        data = sensor.evaluate_tick(context)
        return list(data.run_requests or []), data.cursor

    requests, cursor = tick(None)
    assert requests == []  # nothing landed yet
    landing = workspace / "landing" / "orders"
    _land(landing / "o1.csv", "id,amount\n1,9.5\n")
    _land(landing / "o2.csv", "id,amount\n2,3\n")
    requests, cursor = tick(cursor)
    assert len(requests) == 1  # two files, one run
    assert requests[0].asset_selection == [dg.AssetKey(["shop", "bronze", "orders"])]
    assert requests[0].tags["foundation/new_files"] == "2"
    first_key = requests[0].run_key
    assert tick(cursor)[0] == []  # nothing new: no run
    _land(landing / "o3.csv", "id,amount\n3,1\n")
    requests, cursor = tick(cursor)
    assert [r.tags["foundation/new_files"] for r in requests] == ["1"]
    assert requests[0].run_key != first_key
    # the run the sensor asked for lands the files
    result = dg.materialize(
        [a for a in defs.assets or [] if dg.AssetKey(["shop", "bronze", "orders"]) in a.keys],
        resources=defs.resources,
        instance=instance,
    )
    assert result.success
    # a sensor that starts after a load (no cursor yet) takes only the files modified since as new
    assert tick(None)[0] == []
    monkeypatch.setattr(file_sensors, "SETTLE_S", 0.0)  # o4 is written after the load: no waiting for it to settle
    (landing / "o4.csv").write_text("id,amount\n4,2\n")
    requests, _ = tick(None)
    assert [r.tags["foundation/new_files"] for r in requests] == ["1"]


def test_on_new_files_needs_a_file_extract() -> None:
    with pytest.raises(ValueError, match=r"load\.on_new_files watches files"):
        SourceSpec.model_validate(
            {
                "name": "s",
                "description": "a Delta table",
                "owner": "a@b.co",
                "schedule": "manual",
                "extract": {"type": "delta", "path": "lake/t"},
                "load": {"mode": "replace", "on_new_files": True},
            }
        )
