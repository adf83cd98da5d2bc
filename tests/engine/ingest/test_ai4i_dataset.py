"""The real AI4I 2020 predictive-maintenance data (10,000 rows, raw names with spaces and brackets) lands clean."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest


def repo_root() -> Path:
    here = Path(__file__).resolve()
    return next(p for p in here.parents if (p / "pyproject.toml").exists())


# The repository ships the data set with the machine_failure use case, so a fresh clone runs these tests.
AI4I = repo_root() / "usecases" / "machine_failure" / "data" / "ai4i2020.csv"

COLUMNS = [
    {"name": "udi", "from": "UDI", "type": "integer", "required": True},
    {"name": "product_id", "from": "Product ID", "type": "varchar", "required": True},
    {"name": "type", "from": "Type", "type": "varchar", "checks": [{"accepted_values": ["L", "M", "H"]}]},
    {"name": "air_temperature_k", "from": "Air temperature [K]", "type": "double"},
    {"name": "process_temperature_k", "from": "Process temperature [K]", "type": "double"},
    {"name": "rotational_speed_rpm", "from": "Rotational speed [rpm]", "type": "integer"},
    {"name": "torque_nm", "from": "Torque [Nm]", "type": "double"},
    {"name": "tool_wear_min", "from": "Tool wear [min]", "type": "integer"},
    {"name": "machine_failure", "from": "Machine failure", "type": "boolean"},
    {"name": "twf", "from": "TWF", "type": "boolean"},
    {"name": "hdf", "from": "HDF", "type": "boolean"},
    {"name": "pwf", "from": "PWF", "type": "boolean"},
    {"name": "osf", "from": "OSF", "type": "boolean"},
    {"name": "rnf", "from": "RNF", "type": "boolean"},
]


@pytest.fixture
def ai4i_kit(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "machine_readings",
                {"type": "csv", "path": "landing/ai4i/*.csv"},
                load={"mode": "merge", "primary_key": ["udi"]},
                columns=COLUMNS,
                checks=[{"unique": ["udi"]}],
            )
        ],
        usecase="machine_failure",
    )
    kit.land("landing/ai4i/ai4i2020.csv", AI4I.read_bytes())
    return kit


def raw_rows() -> list[dict[str, str]]:
    with AI4I.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_ai4i_lands_all_10000_rows_with_clean_names_and_types(ai4i_kit):
    report = ai4i_kit.ingest("machine_readings")
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (10_000, 10_000, 0)
    assert report.reconciles
    assert report.schema == [
        ("udi", "int32"),
        ("product_id", "string"),
        ("type", "string"),
        ("air_temperature_k", "double"),
        ("process_temperature_k", "double"),
        ("rotational_speed_rpm", "int32"),
        ("torque_nm", "double"),
        ("tool_wear_min", "int32"),
        ("machine_failure", "bool"),
        ("twf", "bool"),
        ("hdf", "bool"),
        ("pwf", "bool"),
        ("osf", "bool"),
        ("rnf", "bool"),
        ("_load_id", "string"),
        ("_loaded_at", "timestamp[us, tz=Etc/UTC]"),
        ("_source_file", "string"),
    ]
    (summary,) = ai4i_kit.query(
        """
        SELECT count(*) AS n, count(DISTINCT udi) AS udis, min(udi) AS first, max(udi) AS last,
               count(*) FILTER (machine_failure) AS failures, list_sort(list(DISTINCT type)) AS types,
               round(sum(torque_nm), 1) AS torque, sum(tool_wear_min) AS wear
        FROM bronze.machine_failure__machine_readings
        """
    )
    raw = raw_rows()
    assert summary == {
        "n": 10_000,
        "udis": 10_000,
        "first": 1,
        "last": 10_000,
        "failures": sum(r["Machine failure"] == "1" for r in raw),
        "types": ["H", "L", "M"],
        "torque": round(sum(float(r["Torque [Nm]"]) for r in raw), 1),
        "wear": sum(int(r["Tool wear [min]"]) for r in raw),
    }
    assert summary["failures"] == 339


def test_ai4i_rows_match_the_file_value_for_value(ai4i_kit):
    ai4i_kit.ingest("machine_readings")
    rows = ai4i_kit.query(
        "SELECT * EXCLUDE (_load_id, _loaded_at, _source_file) FROM bronze.machine_failure__machine_readings "
        "WHERE udi IN (1, 2, 5000, 10000) ORDER BY udi"
    )
    raw = {int(r["UDI"]): r for r in raw_rows()}
    for row in rows:
        source = raw[row["udi"]]
        assert row == {
            "udi": int(source["UDI"]),
            "product_id": source["Product ID"],
            "type": source["Type"],
            "air_temperature_k": float(source["Air temperature [K]"]),
            "process_temperature_k": float(source["Process temperature [K]"]),
            "rotational_speed_rpm": int(source["Rotational speed [rpm]"]),
            "torque_nm": float(source["Torque [Nm]"]),
            "tool_wear_min": int(source["Tool wear [min]"]),
            "machine_failure": source["Machine failure"] == "1",
            "twf": source["TWF"] == "1",
            "hdf": source["HDF"] == "1",
            "pwf": source["PWF"] == "1",
            "osf": source["OSF"] == "1",
            "rnf": source["RNF"] == "1",
        }
    assert [r["product_id"] for r in rows] == ["M14860", "L47181", raw[5000]["Product ID"], "M24859"]


def test_ai4i_rerun_merges_onto_the_same_10000_rows(ai4i_kit):
    first = ai4i_kit.ingest("machine_readings")
    second = ai4i_kit.ingest("machine_readings")
    assert (second.rows_read, second.rows_inserted, second.rows_updated) == (10_000, 0, 10_000)
    assert second.delta_version == first.delta_version + 1
    assert ai4i_kit.count("machine_readings") == 10_000
