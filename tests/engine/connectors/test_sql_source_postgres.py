"""`sql` extracts on a real PostgreSQL (tests/pg_server.py starts one per session), through the real ingest."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pg_server import PostgresServer, free_port

from foundation.engine.connectors.staging import ExtractError

_databases = itertools.count()


@pytest.fixture
def fleet_db(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database with a `repairs` table, its URL exported as FLEET_DB_URL; returns the database name."""
    name = f"fleet_{next(_databases)}"
    monkeypatch.setenv("FLEET_DB_URL", postgres_server.create_database(name))
    postgres_server.psql(
        "CREATE TABLE repairs (id int PRIMARY KEY, truck_id text NOT NULL, changed_at timestamptz NOT NULL, "
        "cost numeric(10,2), note text);"
        "INSERT INTO repairs SELECT g, 'T' || (g % 4), timestamptz '2024-03-01 08:00+00' + g * interval '1 hour', "
        "g * 10.5, NULL FROM generate_series(1, 20) g;",
        database=name,
    )
    return name


def repairs_source(spec: Any, **extract: Any) -> dict[str, Any]:
    return spec(
        "repairs",
        {"type": "sql", "url": "${FLEET_DB_URL}", **(extract or {"table": "repairs"})},
        load={"mode": "merge", "primary_key": ["id"], "incremental": {"cursor": "changed_at"}},
        columns=[
            {"name": "id", "type": "integer", "required": True},
            {"name": "changed_at", "type": "timestamptz", "required": True},
            {"name": "cost", "type": "decimal(10,2)"},
        ],
    )


def test_table_incremental_pushes_the_cursor_down(
    make_workspace: Any, spec: Any, fleet_db: str, postgres_server: PostgresServer
) -> None:
    kit = make_workspace(sources=[repairs_source(spec)])
    first = kit.ingest("repairs")
    assert first.rows_landed == 20 and first.reconciles and first.notes["pushdown"] == "no"
    assert first.notes["origin"] == f"postgresql://foundation:***@127.0.0.1:{postgres_server.port}/{fleet_db}#repairs"
    again = kit.ingest("repairs")
    assert again.status == "nothing_new" and again.notes["records"] == 0
    postgres_server.psql(
        "INSERT INTO repairs VALUES (21, 'T1', timestamptz '2024-03-10 00:00+00', 1.5, 'new');"
        "UPDATE repairs SET cost = 0, changed_at = timestamptz '2024-03-10 01:00+00' WHERE id = 3;",
        database=fleet_db,
    )
    third = kit.ingest("repairs")
    # Only the 2 changed rows travel: the last cursor is a bound parameter of the database's own filter.
    assert third.notes == {**third.notes, "pushdown": "yes", "records": 2}
    assert third.rows_inserted == 1 and third.rows_updated == 1
    rows = kit.rows("repairs", order_by="id")
    assert len(rows) == 21 and float(rows[2]["cost"]) == 0.0 and rows[2]["truck_id"] == "T3"
    assert "password" not in str(third.to_dict()) and postgres_server.password not in str(third.to_dict())


def test_query_reads_postgres_types(make_workspace: Any, spec: Any, fleet_db: str) -> None:
    query = "SELECT id, changed_at, cost, truck_id FROM repairs WHERE truck_id = 'T0' ORDER BY id"
    kit = make_workspace(
        sources=[spec("repairs", {"type": "sql", "url": "${FLEET_DB_URL}", "query": query}, load={"mode": "replace"})]
    )
    report = kit.ingest("repairs")
    schema = dict(report.schema)
    assert report.rows_landed == 5
    assert schema["id"] == "int32" and schema["changed_at"].startswith("timestamp[us, tz=")
    assert [r["id"] for r in kit.rows("repairs", order_by="id")] == [4, 8, 12, 16, 20]


def test_wrong_password_names_the_variable_never_the_value(
    make_workspace: Any, spec: Any, fleet_db: str, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wr0ng-pass!"
    monkeypatch.setenv("FLEET_DB_URL", postgres_server.url_for(fleet_db, password=wrong))
    kit = make_workspace(sources=[repairs_source(spec)])
    with pytest.raises(ExtractError) as error:
        kit.ingest("repairs")
    message = str(error.value)
    assert "the user name or password is wrong: fix them in the URL in ${FLEET_DB_URL}" in message
    assert "password authentication failed" in message
    assert wrong not in message and "Wr0ng" not in message and "foundation:***@" in message


def test_unreachable_database_and_missing_table(
    make_workspace: Any, spec: Any, fleet_db: str, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = make_workspace(sources=[repairs_source(spec, table="repair")])
    with pytest.raises(ExtractError) as missing:
        kit.ingest("repairs")
    assert "the table does not exist: fix extract.table or extract.query; the database has: repairs" in str(
        missing.value
    )
    monkeypatch.setenv("FLEET_DB_URL", f"postgresql://foundation:{postgres_server.password}@127.0.0.1:{free_port()}/x")
    with pytest.raises(ExtractError) as unreachable:
        kit.ingest("repairs")
    message = str(unreachable.value)
    assert "cannot reach the database: check that it is running" in message and "${FLEET_DB_URL}" in message
    assert postgres_server.password not in message
    monkeypatch.setenv("FLEET_DB_URL", postgres_server.url_for("no_such_db"))
    with pytest.raises(ExtractError, match="the database does not exist: fix its name in the URL in"):
        kit.ingest("repairs")
    assert kit.version("repairs") is None


def test_text_timestamp_cursor_misses_no_newer_row_on_the_same_day(
    make_workspace: Any, spec: Any, fleet_db: str, postgres_server: PostgresServer
) -> None:
    # The saved cursor is ISO with a 'T'; text stored with a space sorts below it on the same day, so the pushed-down
    # value is normalised to the stored form: a later reading of the same day must still travel.
    postgres_server.psql(
        "CREATE TABLE readings (id int, read_at text);"
        "INSERT INTO readings VALUES (1, '2024-03-05 08:00:00'), (2, '2024-03-05 09:00:00');",
        database=fleet_db,
    )
    kit = make_workspace(
        sources=[
            spec(
                "readings",
                {"type": "sql", "url": "${FLEET_DB_URL}", "table": "readings"},
                load={"mode": "append", "incremental": {"cursor": "read_at"}},
                columns=[{"name": "id", "type": "integer"}, {"name": "read_at", "type": "timestamp"}],
            )
        ]
    )
    assert kit.ingest("readings").rows_landed == 2
    postgres_server.psql("INSERT INTO readings VALUES (3, '2024-03-05 10:30:00')", database=fleet_db)
    report = kit.ingest("readings")
    assert report.notes["pushdown"] == "yes" and report.rows_landed == 1
    assert [r["id"] for r in kit.rows("readings", order_by="id")] == [1, 2, 3]
