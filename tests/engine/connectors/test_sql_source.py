"""`sql` extracts on real SQLite files, through the real ingest (SourceLoader -> staged Parquet -> bronze Delta)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from foundation.engine.connectors.sql import parse_database_url, redact_url, select_sql, sqlite_cursor_value
from foundation.engine.connectors.staging import ExtractError, StageRequest, stage_extract
from foundation.specs.source import SourceSpec, SqlExtract

DB = "data/workshop.db"


def make_db(root: Path, rows: list[tuple[Any, ...]], schema: str = "id INTEGER, ts TEXT, cost REAL, shop TEXT") -> Path:
    path = root / DB
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE IF NOT EXISTS repairs ({schema})")
    marks = ", ".join("?" * len(rows[0])) if rows else ""
    if rows:
        con.executemany(f"INSERT INTO repairs VALUES ({marks})", rows)
    con.commit()
    con.close()
    return path


def sql_exec(root: Path, *statements: str) -> None:
    con = sqlite3.connect(root / DB)
    for statement in statements:
        con.execute(statement)
    con.commit()
    con.close()


def repairs(first: int, last: int) -> list[tuple[Any, ...]]:
    return [(i, f"2024-03-{i:02d} 08:00:00", 100.0 + i, f"shop-{i % 3}") for i in range(first, last + 1)]


INCREMENTAL_COLUMNS = [
    {"name": "id", "type": "bigint", "required": True},
    {"name": "ts", "type": "timestamp", "required": True},
    {"name": "cost", "type": "double"},
]


@pytest.fixture
def sqlite_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_DB_URL", f"sqlite:///{DB}")


# -- pure parts ----------------------------------------------------------------------------------------------------


def test_urls_are_parsed_and_passwords_never_shown(tmp_path: Path) -> None:
    pg = parse_database_url("postgresql://ann:s3cr%40t@db.example:5432/fleet", tmp_path, connect_timeout=7)
    assert pg.kind == "postgresql"
    assert "s3cr" not in pg.display and pg.display == "postgresql://ann:***@db.example:5432/fleet"
    assert "connect_timeout=7" in pg.uri
    assert "s3cr@t" in pg.secrets  # the decoded form is scrubbed from driver messages too
    relative = parse_database_url("sqlite:///data/x.db", tmp_path)
    assert relative.uri == f"file:{tmp_path}/data/x.db?mode=ro"
    absolute = parse_database_url("sqlite:////srv/x.db", tmp_path)
    assert absolute.uri == "file:/srv/x.db?mode=ro" and absolute.display == "sqlite:////srv/x.db"
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'"):
        parse_database_url("mysql://u:p@h/db", tmp_path)
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_cursor_pushdown_value_and_sql_are_bound_not_formatted() -> None:
    assert sqlite_cursor_value("42") == 42
    assert sqlite_cursor_value("4.5") == 4.5
    assert sqlite_cursor_value("2024-03-05T08:00:00") == "2024-03-05 08:00:00"
    assert sqlite_cursor_value("B-07") == "B-07"
    sql = select_sql("SELECT * FROM repairs", ["cost"], ["id", "cost"], '"ts" > ?')
    assert (
        sql
        == 'SELECT "id", CAST("cost" AS TEXT) AS "cost" FROM (SELECT * FROM repairs) AS _foundation_q WHERE "ts" > ?'
    )


def test_spec_refuses_a_literal_password_and_ambiguous_reads(spec: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ValidationError, match="literal password"):
        SqlExtract.model_validate({"type": "sql", "url": "postgresql://u:hunter2@h/db", "table": "t"})
    SqlExtract.model_validate({"type": "sql", "url": "postgresql://u:${DB_PASSWORD}@h/db", "table": "t"})
    with pytest.raises(ValidationError, match="exactly one of table"):
        SqlExtract.model_validate({"type": "sql", "url": "${U}", "table": "t", "query": "SELECT 1"})
    with pytest.raises(ValidationError, match="not a plain table name"):
        SqlExtract.model_validate({"type": "sql", "url": "${U}", "table": "t; DROP TABLE x"})
    with pytest.raises(ValidationError, match="append mode needs incremental"):
        SourceSpec.model_validate(spec("r", {"type": "sql", "url": "${U}", "table": "t"}))
    # The pushed-down column is the cursor's raw name (from:) unless the extract names one.
    parsed = SourceSpec.model_validate(
        spec(
            "r",
            {"type": "sql", "url": "${U}", "table": "t"},
            load={"mode": "merge", "primary_key": ["id"], "incremental": {"cursor": "changed_at"}},
            columns=[{"name": "id"}, {"name": "changed_at", "from": "ChangedAt", "type": "timestamp"}],
        )
    )
    assert isinstance(parsed.extract, SqlExtract) and parsed.extract.cursor_column == "ChangedAt"
    # A cursor in a custom text format (dd/mm/yyyy) does not sort as text: no pushdown, the plan filters alone.
    day_first = SourceSpec.model_validate(
        spec(
            "r",
            {"type": "sql", "url": "${U}", "table": "t"},
            load={"mode": "append", "incremental": {"cursor": "day"}},
            columns=[{"name": "day", "type": "date", "format": "%d/%m/%Y"}],
        )
    )
    assert isinstance(day_first.extract, SqlExtract) and day_first.extract.cursor_column is None


# -- through the ingest ---------------------------------------------------------------------------------------------


def test_table_lands_with_the_database_types_and_lineage(make_workspace: Any, spec: Any, sqlite_env: None) -> None:
    kit = make_workspace(
        sources=[
            spec("repairs", {"type": "sql", "url": "${WORKSHOP_DB_URL}", "table": "repairs"}, load={"mode": "replace"})
        ]
    )
    make_db(kit.root, repairs(1, 5))
    report = kit.ingest("repairs")
    assert report.rows_landed == 5 and report.reconciles
    assert dict(report.schema)["id"] == "int64" and dict(report.schema)["cost"] == "double"
    assert report.notes["origin"] == f"sqlite:///{DB}#repairs" and report.notes["records"] == 5
    rows = kit.rows("repairs", order_by="id")
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["shop"] == "shop-1" and rows[0]["_source_file"] == f"sqlite:///{DB}#repairs"


def test_query_with_declared_columns(make_workspace: Any, spec: Any, sqlite_env: None) -> None:
    query = "SELECT id AS RepairId, ts, cost FROM repairs WHERE shop = 'shop-0';"
    kit = make_workspace(
        sources=[
            spec(
                "repairs",
                {"type": "sql", "url": "${WORKSHOP_DB_URL}", "query": query},
                load={"mode": "replace"},
                columns=[
                    {"name": "repair_id", "from": "RepairId", "type": "integer", "required": True},
                    {"name": "ts", "type": "timestamp"},
                    {"name": "cost", "type": "decimal(10,2)"},
                ],
            )
        ]
    )
    make_db(kit.root, repairs(1, 9))
    report = kit.ingest("repairs")
    assert report.rows_landed == 3
    landed = {k: v for k, v in report.schema if not k.startswith("_")}
    assert landed == {"repair_id": "int32", "ts": "timestamp[us]", "cost": "decimal128(10, 2)"}
    assert [r["repair_id"] for r in kit.rows("repairs", order_by="repair_id")] == [3, 6, 9]
    assert report.notes["origin"] == f"sqlite:///{DB}#query"


def test_rows_stream_in_batches(make_workspace: Any, spec: Any, sqlite_env: None) -> None:
    kit = make_workspace(
        sources=[
            spec("repairs", {"type": "sql", "url": "${WORKSHOP_DB_URL}", "table": "repairs"}, load={"mode": "replace"})
        ],
        settings={"ingest": {"batch_rows": 100}},
    )
    make_db(kit.root, [(i, "2024-01-01", float(i), "s") for i in range(1050)])
    report = kit.ingest("repairs")
    assert report.notes["batches"] == 11  # 10 full batches of 100 and one of 50: never the whole table at once
    assert report.rows_landed == 1050 and kit.count("repairs") == 1050


def test_cursor_incremental_lands_each_row_once(make_workspace: Any, spec: Any, sqlite_env: None) -> None:
    kit = make_workspace(
        sources=[
            spec(
                "repairs",
                {"type": "sql", "url": "${WORKSHOP_DB_URL}", "table": "repairs"},
                load={"mode": "append", "incremental": {"cursor": "ts"}},
                columns=INCREMENTAL_COLUMNS,
            )
        ]
    )
    make_db(kit.root, repairs(1, 5))
    first = kit.ingest("repairs")
    assert first.rows_landed == 5 and first.notes["pushdown"] == "no"
    again = kit.ingest("repairs")
    assert again.status == "nothing_new" and again.notes["records"] == 0  # the database filtered: nothing read
    sql_exec(kit.root, "INSERT INTO repairs VALUES (6, '2024-03-06 08:00:00', 106.0, 'x')")
    sql_exec(kit.root, "INSERT INTO repairs VALUES (7, '2024-03-07T09:30:00', 107.0, 'x')")  # ISO 'T' form too
    third = kit.ingest("repairs")
    assert third.notes["pushdown"] == "yes" and third.notes["records"] == 2 and third.rows_landed == 2
    assert [r["id"] for r in kit.rows("repairs", order_by="id")] == [1, 2, 3, 4, 5, 6, 7]


def test_failed_load_keeps_table_and_cursor_then_catches_up(make_workspace: Any, spec: Any, sqlite_env: None) -> None:
    kit = make_workspace(
        sources=[
            spec(
                "repairs",
                {"type": "sql", "url": "${WORKSHOP_DB_URL}", "table": "repairs"},
                load={"mode": "merge", "primary_key": ["id"], "incremental": {"cursor": "ts"}},
                columns=INCREMENTAL_COLUMNS,
                on_invalid_rows="fail",
            )
        ]
    )
    make_db(kit.root, repairs(1, 3))
    kit.ingest("repairs")
    version = kit.version("repairs")
    sql_exec(
        kit.root,
        "INSERT INTO repairs VALUES (4, '2024-03-04 08:00:00', 104.0, 'x')",
        "INSERT INTO repairs VALUES (5, '2024-03-05 08:00:00', 'broken', 'x')",
    )
    with pytest.raises(Exception, match="cost: cannot read 'broken' as double"):
        kit.ingest("repairs")
    assert kit.version("repairs") == version and kit.count("repairs") == 3
    sql_exec(kit.root, "UPDATE repairs SET cost = 105.0 WHERE id = 5")
    report = kit.ingest("repairs")
    assert report.rows_landed == 2  # rows 4 and 5: the failed load did not move the cursor past row 4
    assert [r["id"] for r in kit.rows("repairs", order_by="id")] == [1, 2, 3, 4, 5]


def test_malformed_cells_are_quarantined_with_the_reason(make_workspace: Any, spec: Any, sqlite_env: None) -> None:
    kit = make_workspace(
        sources=[
            spec(
                "repairs",
                {"type": "sql", "url": "${WORKSHOP_DB_URL}", "table": "repairs"},
                load={"mode": "replace"},
                columns=[{"name": "id", "type": "bigint"}, {"name": "cost", "type": "double"}],
            )
        ],
        settings={"ingest": {"batch_rows": 2}},  # the bad value comes after the driver typed the column as REAL
    )
    make_db(kit.root, [*repairs(1, 4), (5, "2024-03-05", "N/A", "x")])
    report = kit.ingest("repairs")
    assert report.rows_landed == 4 and report.rows_quarantined == 1 and report.reconciles
    assert report.notes["read_as_text"] == "cost"
    [bad] = kit.quarantine("repairs")
    assert bad["_invalid_reason"] == "cost: cannot read 'N/A' as double"


def test_schema_change_follows_the_contract(make_workspace: Any, spec: Any, sqlite_env: None) -> None:
    source = spec(
        "repairs",
        {"type": "sql", "url": "${WORKSHOP_DB_URL}", "table": "repairs"},
        load={"mode": "replace"},
        checks=[{"schema": {"contract": "freeze"}}],
    )
    kit = make_workspace(sources=[source])
    make_db(kit.root, repairs(1, 2))
    kit.ingest("repairs")
    version = kit.version("repairs")
    sql_exec(kit.root, "ALTER TABLE repairs ADD COLUMN mechanic TEXT", "UPDATE repairs SET mechanic = 'ann'")
    with pytest.raises(Exception, match="schema contract refused the load") as refused:
        kit.ingest("repairs")
    assert "mechanic" in str(refused.value) and kit.version("repairs") == version
    kit.write_source({**source, "checks": [{"schema": {"contract": "evolve"}}]})
    kit.ingest("repairs")
    assert {r["mechanic"] for r in kit.rows("repairs")} == {"ann"}


def test_missing_table_names_the_tables_there(make_workspace: Any, spec: Any, sqlite_env: None) -> None:
    kit = make_workspace(
        sources=[
            spec("repairs", {"type": "sql", "url": "${WORKSHOP_DB_URL}", "table": "repair"}, load={"mode": "replace"})
        ]
    )
    make_db(kit.root, repairs(1, 2))
    with pytest.raises(ExtractError) as error:
        kit.ingest("repairs")
    message = str(error.value)
    assert "uc/repairs: table repair at sqlite:///data/workshop.db" in message
    assert "the table does not exist: fix extract.table or extract.query; the database has: repairs" in message
    assert kit.version("repairs") is None


def test_missing_file_and_missing_variable_say_the_fix(make_workspace: Any, spec: Any, monkeypatch: Any) -> None:
    kit = make_workspace(
        sources=[
            spec("repairs", {"type": "sql", "url": "${WORKSHOP_DB_URL}", "table": "repairs"}, load={"mode": "replace"})
        ]
    )
    monkeypatch.delenv("WORKSHOP_DB_URL", raising=False)
    with pytest.raises(ExtractError, match="environment variable WORKSHOP_DB_URL is not set"):
        kit.ingest("repairs")
    monkeypatch.setenv("WORKSHOP_DB_URL", "sqlite:///data/nowhere.db")
    with pytest.raises(ExtractError, match=r"the SQLite file .*data/nowhere.db does not exist: fix the path in "):
        kit.ingest("repairs")
    assert not (kit.root / "data" / "nowhere.db").exists()  # opened read-only: nothing created


def test_stage_writes_nothing_when_nothing_is_new(tmp_path: Path) -> None:
    make_db(tmp_path, repairs(1, 3))
    extract = SqlExtract.model_validate(
        {"type": "sql", "url": f"sqlite:///{DB}", "table": "repairs", "cursor_column": "id"}
    )
    staging = tmp_path / "staging"
    staging.mkdir()
    request = StageRequest(tmp_path, "uc/repairs", extract, "3", staging, 1000)
    staged = stage_extract(request)
    assert staged.paths == [] and staged.rows == 0 and list(staging.iterdir()) == []
