"""The check-results history (a Delta table of ours): a row per check per load; `latest_results` gives the
newest result of every (source, check), the basis of `foundation quality`."""

from __future__ import annotations

from foundation.engine.quality.checks import declared_checks
from foundation.engine.quality.results import latest_results


def readings(spec, name: str = "readings"):
    return spec(
        name,
        {"type": "csv", "path": f"landing/{name}/*.csv"},
        columns=[
            {"name": "id", "type": "integer"},
            {"name": "temp", "type": "double", "checks": [{"between": [0, 100], "severity": "warn"}]},
        ],
        checks=[{"unique": ["id"]}, {"completeness": {"min_rows": 2}}],
    )


def by_check(rows: list[dict], source: str) -> dict[str, dict]:
    return {r["check"]: r for r in rows if r["source"] == source}


def test_no_history_yet(make_workspace, spec):
    kit = make_workspace(sources=[readings(spec)])
    assert latest_results(kit.open()) == []


def test_latest_results_hold_the_newest_status_of_each_check(make_workspace, spec, ingest):
    kit = make_workspace(sources=[readings(spec), readings(spec, "others")])
    kit.land("landing/readings/1.csv", "id,temp\n1,20\n2,500\n3,30\n")
    first = ingest(kit, "readings")
    kit.land("landing/others/1.csv", "id,temp\n1,1\n2,2\n")
    ingest(kit, "others")

    latest = latest_results(kit.open())
    names = [c.name for c in declared_checks(kit.source("readings").spec)]
    assert sorted((r["source"], r["check"]) for r in latest) == sorted(
        [("uc/readings", n) for n in names] + [("uc/others", n) for n in names]
    )  # one row per (source, check)
    readings_1 = by_check(latest, "uc/readings")
    assert readings_1["temp__between"]["status"] == "warn"
    assert readings_1["temp__between"]["failing"] == 1
    assert readings_1["temp__between"]["sample"] == ["500.0"]
    assert readings_1["unique__id"]["status"] == "pass"
    assert {r["load_id"] for r in readings_1.values()} == {first.load_id}

    kit.land("landing/readings/2.csv", "id,temp\n3,40\n4,50\n")  # temps fine now; id 3 again
    second = ingest(kit, "readings")
    latest = latest_results(kit.open())
    assert len(latest) == 2 * len(names)
    readings_2 = by_check(latest, "uc/readings")
    assert (readings_2["temp__between"]["status"], readings_2["temp__between"]["failing"]) == ("pass", 0)
    assert (readings_2["unique__id"]["status"], readings_2["unique__id"]["sample"]) == ("fail", ["3 (x2)"])
    assert {r["load_id"] for r in readings_2.values()} == {second.load_id}
    assert readings_2["unique__id"]["checked_at"] > readings_1["unique__id"]["checked_at"]
    assert by_check(latest, "uc/others")["unique__id"]["load_id"] != second.load_id  # other sources untouched
    assert [r["source"] for r in latest] == sorted(r["source"] for r in latest)

    assert [r["source"] for r in latest_results(kit.open(), usecase="nope")] == []
    assert len(latest_results(kit.open(), usecase="uc")) == len(latest)


def test_a_refused_load_is_recorded_as_a_failed_check(make_workspace, spec, ingest, refused):
    kit = make_workspace(sources=[readings(spec)])
    kit.land("landing/readings/1.csv", "id,temp\n1,20\n2,30\n")
    ingest(kit, "readings")
    kit.land("landing/readings/2.csv", "id,temp\n3,40\n")
    refused(kit, "readings")
    latest = by_check(latest_results(kit.open()), "uc/readings")
    assert (latest["completeness"]["status"], latest["completeness"]["observed"]) == (
        "fail",
        "1 rows landed, fewer than 2",
    )
    assert latest["completeness"]["load_id"] != latest["unique__id"]["load_id"]  # table rules never ran on it
