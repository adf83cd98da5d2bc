"""A crash at any step of a load loses and duplicates no row (issue 14).

`foundation ingest` runs in a subprocess that `os._exit`s at a named step (FOUNDATION_CRASH_AT, the test hook of
foundation/engine/ingest/crash_points.py), or that is killed with SIGKILL at random moments. Then it runs again,
normally.
After each crash and re-run, every file reconciles: its valid rows are in bronze once, its invalid rows (type, parse
and row-rule failures) in the quarantine once, and no quarantine row belongs to a load that never committed.
"""

from __future__ import annotations

import json
import re

import pytest
from crash_kit import (
    LOADS,
    READS_EVERY_FILE,
    Landing,
    assert_nothing_lost,
    committed_loads,
    crash,
    quarantine_rows,
    rerun,
)
from rest_server import Reply, RestServer, Seen, paged

from foundation.engine.ingest.crash_points import POINTS
from foundation.engine.ingest.pending_quarantine import PendingQuarantine

pytestmark = pytest.mark.slow  # each case runs `foundation ingest` once or twice (2-3 s each)

FILE_POINTS = [p for p in POINTS if p not in ("after_staging", "after_settle_quarantine_commit")]


@pytest.mark.parametrize("point", FILE_POINTS)
def test_a_crash_at_each_step_of_an_append_load_loses_nothing(make_workspace, spec, crash_settings, point):
    landing = Landing(make_workspace, spec, crash_settings, LOADS["append"])
    landing.land()
    landing.kit.ingest("items")  # an earlier load, committed (in process: quicker)
    landing.land(files=2)
    crash(landing.kit, point)
    report = landing.kit.ingest("items")  # the re-run (in process: the crash is what needs a process)
    assert report.reconciles
    assert_nothing_lost(landing)
    assert landing.kit.ingest("items").status == "nothing_new"
    assert_nothing_lost(landing)


def test_issue_14_through_the_cli_and_a_crash_while_settling(make_workspace, spec, crash_settings):
    """kill right after the bronze commit of a first load; the re-run settles (and is killed doing it), then again."""
    landing = Landing(make_workspace, spec, crash_settings, LOADS["append"])
    landing.land(files=2)
    crash(landing.kit, "after_bronze_commit")
    assert len(PendingQuarantine(landing.kit.quarantine_uri("items")).load_ids()) == 1
    crash(landing.kit, "after_settle_quarantine_commit")
    (report,) = json.loads(rerun(landing.kit).stdout)["data"]["reports"]
    assert report["status"] == "nothing_new"  # the files were recorded as landed by the crashed load...
    assert report["notes"] == {}  # ...and its quarantine rows were appended by the run that crashed after it
    assert_nothing_lost(landing)


@pytest.mark.parametrize("load", [k for k in LOADS if k != "append"])
def test_a_crash_right_after_the_bronze_commit_loses_nothing_in_every_mode(make_workspace, spec, crash_settings, load):
    """The step issue 14 found unsafe, in the other load modes (re-run in process: only the crash needs a process)."""
    landing = Landing(make_workspace, spec, crash_settings, LOADS[load])
    landing.land()
    landing.kit.ingest("items")
    landing.land(files=2)
    crash(landing.kit, "after_bronze_commit")
    report = landing.kit.ingest("items")
    read = landing.invalid if load in READS_EVERY_FILE else {f: landing.invalid[f] for f in landing.files[1:]}
    assert report.notes["quarantine_settled"] == sum(map(len, read.values()))  # the crashed load's invalid rows
    assert_nothing_lost(landing, reads_every_file=load in READS_EVERY_FILE)


REST_RECORDS = [
    {"repair_id": f"R{i:03d}", "cost": "n/a" if i % 3 == 0 else 10.0 * i, "updated_at": f"2024-01-01T{i:02d}:00:00"}
    for i in range(1, 14)
]


def since_filter(seen: Seen) -> Reply:
    """An API that honours the cursor (`updated_since`, inclusive), as the runner asks it to."""
    since = seen.query.get("updated_since")
    return paged([r for r in REST_RECORDS if since is None or r["updated_at"] >= since], page_size=5)(seen)


@pytest.mark.parametrize("point", ["after_staging", "after_bronze_commit"])
def test_a_crash_of_a_staged_rest_load_loses_nothing(make_workspace, spec, crash_settings, point):
    with RestServer() as api:
        api.route("/repairs", since_filter)
        source = spec(
            "repairs",
            {
                "type": "rest_api",
                "base_url": api.url,
                "path": "repairs",
                "data_selector": "data",
                "paginator": {"type": "page_number", "base_page": 1, "total_path": "total_pages"},
                "incremental": {"cursor": "updated_at", "param": "updated_since"},
            },
            load={"mode": "merge", "primary_key": ["repair_id"], "incremental": {"cursor": "updated_at"}},
            columns=[
                {"name": "repair_id", "type": "varchar", "required": True},
                {"name": "cost", "type": "double"},
                {"name": "updated_at", "type": "timestamp", "required": True},
            ],
        )
        kit = make_workspace(sources=[source], settings=crash_settings)
        crash(kit, point)
        kit.ingest("repairs")
    landed = sorted(r["repair_id"] for r in kit.query('SELECT repair_id FROM bronze."uc__repairs"'))
    assert landed == [r["repair_id"] for r in REST_RECORDS if r["cost"] != "n/a"]
    quarantined = quarantine_rows(kit, "repairs")
    assert {q["_load_id"] for q in quarantined} <= set(committed_loads(kit, "repairs"))
    bad = sorted(re.search(r"R\d{3}", q["_raw_record"]).group() for q in quarantined)
    assert bad == [r["repair_id"] for r in REST_RECORDS if r["cost"] == "n/a"]
    assert PendingQuarantine(kit.quarantine_uri("repairs")).load_ids() == []
