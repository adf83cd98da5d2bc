"""REST sources through the whole ingest path (staged, typed, landed in Delta): incremental loads, failures mid-way,
schema changes. Each test runs a real HTTP server on 127.0.0.1 (tests/rest_server.py) and real Delta tables.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_server import Reply, RestServer, Seen, paged

from foundation.engine.connectors.staging import ExtractError
from foundation.engine.quality.gate import QualityGateError

TOKEN_ENV = {"TEST_API_TOKEN": "s3cr3t-token"}


def repairs(n: int, start: int = 1, day: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "repair_id": f"R{i:04d}",
            "truck_id": f"T{i % 3}",
            "cost": 10.0 * i,
            "updated_at": f"2024-01-{day:02d}T{i % 24:02d}:00:00",
        }
        for i in range(start, start + n)
    ]


def rest_source(spec, base_url: str, **extract: Any) -> dict[str, Any]:
    return spec(
        "repairs",
        {
            "type": "rest_api",
            "base_url": base_url,
            "path": "repairs",
            "auth": {"type": "bearer", "token": "${TEST_API_TOKEN}"},
            "data_selector": "data",
            "paginator": {"type": "page_number", "base_page": 1, "total_path": "total_pages"},
            "retries": {"max_attempts": 3, "backoff_factor": 0.01, "max_delay": 0.1},
            **extract,
        },
        load={"mode": "merge", "primary_key": ["repair_id"], "incremental": {"cursor": "updated_at"}},
        columns=[
            {"name": "repair_id", "type": "varchar", "required": True},
            {"name": "truck_id", "type": "varchar"},
            {"name": "cost", "type": "double"},
            {"name": "updated_at", "type": "timestamp", "required": True},
        ],
    )


def since_filter(records: list[dict[str, Any]], page_size: int):
    """An API that honours `updated_since` (>=, like many real ones: the runner drops what was already landed)."""

    def handler(seen: Seen) -> Reply:
        since = seen.query.get("updated_since")
        chosen = [r for r in records if since is None or r["updated_at"] >= since]
        return paged(chosen, page_size)(seen)

    return handler


@pytest.fixture
def env(monkeypatch):
    for key, value in TOKEN_ENV.items():
        monkeypatch.setenv(key, value)


def test_rest_source_lands_every_page_with_lineage_and_notes(make_workspace, spec, env):
    with RestServer() as api:
        api.route("/repairs", paged(repairs(7), page_size=3))
        kit = make_workspace(sources=[rest_source(spec, api.url)])
        report = kit.ingest("repairs")
    assert (report.status, report.rows_read, report.rows_landed) == ("landed", 7, 7)
    assert report.reconciles
    assert report.notes["pages"] == 3 and report.notes["records"] == 7
    assert [r.query.get("page") for r in api.hits("/repairs")] == ["1", "2", "3"]
    assert all(r.headers["authorization"] == "Bearer s3cr3t-token" for r in api.hits("/repairs"))
    rows = kit.rows("repairs", order_by="repair_id")
    assert [r["repair_id"] for r in rows] == [f"R{i:04d}" for i in range(1, 8)]
    assert rows[0]["_source_file"] == api.url + "repairs"
    assert str(rows[0]["updated_at"]) == "2024-01-01 01:00:00"
    assert not any((kit.open().state_dir / "staging").iterdir())


def test_incremental_sends_the_last_landed_cursor_and_reruns_land_no_duplicates(make_workspace, spec, env):
    records = repairs(5)
    with RestServer() as api:
        api.route("/repairs", since_filter(records, page_size=2))
        kit = make_workspace(
            sources=[rest_source(spec, api.url, incremental={"cursor": "updated_at", "param": "updated_since"})]
        )
        first = kit.ingest("repairs")
        assert "updated_since" not in api.hits("repairs")[0].query  # first run: everything
        records.extend(repairs(2, start=6, day=2))  # two new records
        second = kit.ingest("repairs")
        third = kit.ingest("repairs")
    sent = [r.query.get("updated_since") for r in api.hits("repairs")]
    assert sent[first.notes["pages"]] == "2024-01-01T05:00:00"  # the newest updated_at landed by the first run
    assert (first.rows_landed, second.rows_landed, second.rows_stale) == (5, 2, 1)  # the API's >= resends one
    assert (third.rows_landed, third.rows_stale) == (0, 1)
    assert first.reconciles and second.reconciles and third.reconciles
    assert kit.count("repairs") == 7
    assert kit.query("SELECT count(DISTINCT repair_id) AS n FROM bronze.uc__repairs")[0]["n"] == 7


def test_a_failure_mid_way_keeps_table_and_cursor_and_the_next_run_catches_up(make_workspace, spec, env):
    records = repairs(4)
    with RestServer() as api:
        api.route("/repairs", since_filter(records, page_size=2))
        kit = make_workspace(
            sources=[rest_source(spec, api.url, incremental={"cursor": "updated_at", "param": "updated_since"})]
        )
        kit.ingest("repairs")
        version = kit.version("repairs")
        records.extend(repairs(6, start=5, day=3))
        healthy = since_filter(records, page_size=2)
        api.route(
            "/repairs",
            lambda seen: Reply(500, {"error": "db down"}) if seen.query.get("page") == "3" else healthy(seen),
        )
        with pytest.raises(ExtractError, match=r"page 3 of .*/repairs still answered 500"):
            kit.ingest("repairs")
        assert kit.version("repairs") == version and kit.count("repairs") == 4  # nothing of pages 1-2 landed
        failed_since = api.hits("repairs")[-1].query["updated_since"]
        api.route("/repairs", healthy)
        caught_up = kit.ingest("repairs")
    assert failed_since == api.hits("repairs")[-1].query["updated_since"] == "2024-01-01T04:00:00"  # not advanced
    assert caught_up.rows_landed == 6 and caught_up.reconciles
    assert kit.count("repairs") == 10
    assert not any((kit.open().state_dir / "staging").iterdir())  # staging removed after the failure too


def test_a_new_field_is_refused_by_a_frozen_schema_contract(make_workspace, spec, env):
    records = repairs(3)
    with RestServer() as api:
        api.route("/repairs", paged(records, 10))
        source = rest_source(spec, api.url)
        source["checks"] = [{"schema": {"contract": "freeze"}}]
        kit = make_workspace(sources=[source])
        kit.ingest("repairs")
        version = kit.version("repairs")
        records.append({**repairs(1, start=4)[0], "mechanic": "Ada"})  # the API grew a field
        with pytest.raises(QualityGateError, match="schema contract refused the load: new: mechanic"):
            kit.ingest("repairs")
    assert kit.version("repairs") == version and kit.count("repairs") == 3


def test_a_changed_type_is_quarantined_and_a_missing_field_is_null(make_workspace, spec, env):
    records = repairs(3)
    with RestServer() as api:
        api.route("/repairs", paged(records, 10))
        kit = make_workspace(sources=[rest_source(spec, api.url)])
        kit.ingest("repairs")
        late = repairs(2, start=4)
        late[0]["cost"] = "unknown"  # changed type: text where a number was
        del late[1]["truck_id"]  # missing field (truck_id is optional)
        records.extend(late)
        report = kit.ingest("repairs")
    assert (report.rows_read, report.rows_landed, report.rows_quarantined, report.rows_stale) == (5, 1, 1, 3)
    assert report.reconciles
    quarantined = kit.quarantine("repairs")
    assert len(quarantined) == 1 and "cost: cannot read" in quarantined[0]["_invalid_reason"]
    row = kit.query("SELECT truck_id FROM bronze.uc__repairs WHERE repair_id = 'R0005'")
    assert row == [{"truck_id": None}]


def test_a_first_load_of_an_empty_sql_table_is_nothing_new_then_later_rows_land(make_workspace, spec, monkeypatch):
    import sqlite3

    monkeypatch.setenv("WORKSHOP_DB_URL", "sqlite:///data/workshop.db")
    source = spec(
        "repairs",
        {"type": "sql", "url": "${WORKSHOP_DB_URL}", "table": "repairs"},
        load={"mode": "append", "incremental": {"cursor": "ts"}},
        columns=[{"name": "id", "type": "bigint", "required": True}, {"name": "ts", "type": "timestamp"}],
        checks=[{"completeness": {"min_rows": 1}}, {"freshness": {"warn_after": "1d"}}],
    )
    kit = make_workspace(sources=[source])
    (kit.root / "data").mkdir(exist_ok=True)
    con = sqlite3.connect(kit.root / "data/workshop.db")
    con.execute("CREATE TABLE repairs (id INTEGER, ts TEXT)")
    con.commit()
    first = kit.ingest("repairs")  # no bronze table yet and nothing to land
    assert (first.status, first.notes["records"], first.rows_landed) == ("nothing_new", 0, 0)
    assert first.delta_version is None and first.rows_total is None and kit.version("repairs") is None  # no table
    checks = {c["check"]: c for c in first.checks}
    assert checks["completeness"]["status"] == "fail" and "0 rows landed" in checks["completeness"]["observed"]
    assert checks["freshness__last_load"]["status"] == "warn"  # warn_after only: a warning, as declared
    assert checks["freshness__last_load"]["observed"] == "no data"
    con.execute("INSERT INTO repairs VALUES (1, '2024-03-01 08:00:00'), (2, '2024-03-02 08:00:00')")
    con.commit()
    con.close()
    second = kit.ingest("repairs")
    assert (second.status, second.rows_landed) == ("landed", 2) and kit.count("repairs") == 2
