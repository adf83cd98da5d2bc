"""`foundation maintenance` on real Delta tables: orphans of a crashed write removed past the retention, small files
compacted with the same rows, readers and the load state unharmed, deltalake's retention check respected."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from typer.testing import CliRunner

from foundation.core.settings import MaintenanceSettings
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.maintenance import (
    find_tables,
    run_maintenance,
    selected,
    small_files,
    table_kind,
    table_usecase,
)

DAY = 86400.0
CSV_HEADER = "id,value\n"


def rows_of(uri: str) -> list[tuple[Any, ...]]:
    """Every row of the table's current snapshot, read through DuckDB as the platform's readers do."""
    con = duckdb.connect()
    try:
        return sorted(con.execute(f"select * from {delta_relation_sql(con, uri)}").fetchall())
    finally:
        con.close()


def unreferenced(uri: str) -> list[str]:
    """Part files in the table's folder that the current snapshot does not reference."""
    live = {Path(f).name for f in DeltaTable(uri).file_uris()}
    return sorted(p.name for p in Path(uri).glob("part-*.parquet") if p.name not in live)


def age(path: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then))


def crash_a_write(uri: str, schema: pa.Schema, make_batch: Any) -> None:
    """Append through deltalake with a stream that fails after several batches: the files already written stay in
    the folder, and no commit references them (what a killed load or flush leaves)."""

    def batches() -> Iterator[pa.RecordBatch]:
        for i in range(8):
            yield make_batch(i)
        raise RuntimeError("the writer died here")

    version = DeltaTable(uri).version() if (Path(uri) / "_delta_log").is_dir() else None
    with pytest.raises(Exception, match="error"):
        write_deltalake(
            uri, pa.RecordBatchReader.from_batches(schema, batches()), mode="append", target_file_size=256 * 1024
        )
    if version is not None:
        assert DeltaTable(uri).version() == version  # nothing committed


FEEDBACK_SCHEMA = pa.schema([("prediction_id", pa.string()), ("score", pa.float64())])


def feedback_batch(i: int, n: int = 40_000) -> pa.RecordBatch:
    ids = pa.array([f"crash-{i}-{j}" for j in range(n)])
    return pa.record_batch([ids, pa.array([0.5] * n, pa.float64())], schema=FEEDBACK_SCHEMA)


def feedback_flush(uri: str, first: int, n: int) -> None:
    table = pa.table(
        {"prediction_id": [f"p{i}" for i in range(first, first + n)], "score": [i / 100 for i in range(n)]},
        schema=FEEDBACK_SCHEMA,
    )
    write_deltalake(uri, table, mode="append")


# -- the prediction/feedback log: small appends, then a crashed flush --------------------------------------------


def test_a_crashed_write_leaves_orphans_removed_once_past_the_retention(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    uri = str(lake / "ml" / "fleet" / "failure_risk" / "api_predictions")
    for flush in range(12):  # the API flushes every few seconds: one small file each
        feedback_flush(uri, flush * 10, 10)
    crash_a_write(uri, FEEDBACK_SCHEMA, feedback_batch)
    orphans = unreferenced(uri)
    assert orphans, "the crashed write should have left part files"
    fresh, old = orphans[0], orphans[1:]
    for name in old:
        age(Path(uri) / name, 8)
    expected = rows_of(uri)
    assert len(expected) == 120

    settings = MaintenanceSettings()
    dry = run_maintenance(str(lake), settings, dry_run=True)
    (entry,) = dry.tables
    assert (entry.table, entry.kind, entry.files_before, entry.files_compacted, entry.files_after) == (
        "ml/fleet/failure_risk/api_predictions",
        "feedback",
        12,
        12,
        1,  # what the compaction would leave
    )
    assert entry.files_removed == len(old) and entry.bytes_reclaimed > 0
    assert unreferenced(uri) == orphans and DeltaTable(uri).version() == 11  # a dry run changes nothing

    report = run_maintenance(str(lake), settings)
    (entry,) = report.tables
    assert report.ok and entry.status == "ok"
    assert (entry.files_before, entry.files_after, entry.files_compacted) == (12, 1, 12)
    assert entry.files_removed == len(old)
    assert entry.bytes_reclaimed == dry.tables[0].bytes_reclaimed
    left = set(unreferenced(uri))
    assert not left & set(old)  # the old orphans are gone
    assert fresh in left  # a file younger than the retention may be a write in progress: kept
    assert rows_of(uri) == expected  # same rows, read by the same reader
    feedback_flush(uri, 1000, 5)  # and writers carry on
    assert len(rows_of(uri)) == 125


def test_compaction_merges_many_small_appends_and_their_files_go_after_the_retention(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    uri = str(lake / "gold" / "fleet" / "daily_costs")
    # The table allows a zero retention (its own delta.deletedFileRetentionDuration), so the test need not wait a week
    # for the files the compaction replaced: deltalake dates them by the compaction's commit, not by their mtime.
    configuration = {"delta.deletedFileRetentionDuration": "interval 0 hours"}
    for day in range(20):
        rows = pa.table({"day": [day] * 5, "cost": [float(day * 10 + i) for i in range(5)]})
        write_deltalake(uri, rows, mode="append", configuration=configuration if day == 0 else None)
    expected = rows_of(uri)
    assert len(DeltaTable(uri).file_uris()) == 20

    first = run_maintenance(str(lake), MaintenanceSettings())
    (entry,) = first.tables
    assert (entry.kind, entry.files_before, entry.files_after, entry.files_compacted) == ("gold", 20, 1, 20)
    assert entry.files_removed == 0  # the 20 replaced files are younger than the retention: old snapshots still read
    assert rows_of(uri) == expected
    assert len(rows_of_version(uri, 19)) == 100  # time travel to before the compaction still works

    second = run_maintenance(str(lake), MaintenanceSettings(retention_hours=0))
    (entry,) = second.tables
    assert (entry.files_before, entry.files_after, entry.files_compacted, entry.files_removed) == (1, 1, 0, 20)
    assert len(list(Path(uri).glob("part-*.parquet"))) == 1
    assert rows_of(uri) == expected


def rows_of_version(uri: str, version: int) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(f"select * from {delta_relation_sql(con, uri, version=version)}").fetchall()
    finally:
        con.close()


# -- bronze: the load state survives, and a re-run lands nothing twice --------------------------------------------


def test_bronze_orphan_removed_rows_and_load_state_unchanged_through_the_cli(
    make_workspace: Any, spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from foundation.cli.main import app

    kit = make_workspace(
        sources=[spec("readings", {"type": "csv", "path": "landing/*.csv"}, load={"mode": "append"})],
        files={"landing/a.csv": CSV_HEADER + "1,1.5\n2,2.5\n"},
    )
    kit.ingest("readings")
    kit.land("landing/b.csv", CSV_HEADER + "3,3.5\n")
    kit.ingest("readings")
    uri = kit.bronze_uri("readings")
    before = kit.rows("readings", order_by="id")
    live = DeltaTable(uri).file_uris()
    orphan = Path(uri) / "part-00000-0badc0de-0000-0000-0000-000000000000-c000.snappy.parquet"
    shutil.copy(live[0], orphan)  # written, never committed
    age(orphan, 10)

    monkeypatch.setenv("FOUNDATION_WORKSPACE", str(kit.root))
    result = CliRunner().invoke(app, ["maintenance", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["data"]
    (entry,) = [t for t in report["tables"] if t["table"] == "bronze/uc/readings"]
    assert (entry["kind"], entry["files_before"], entry["files_after"], entry["files_removed"]) == (
        "bronze",
        2,
        1,
        1,
    )
    assert entry["bytes_reclaimed"] == os.path.getsize(live[0])
    assert report["ok"] is True and report["retention_hours"] == 168
    assert not orphan.exists()
    assert kit.rows("readings", order_by="id") == before

    assert kit.ingest("readings").status == "nothing_new"  # the load state is intact: nothing reloaded
    kit.land("landing/c.csv", CSV_HEADER + "4,4.5\n")
    assert kit.ingest("readings").rows_landed == 1
    assert [r["id"] for r in kit.rows("readings", order_by="id")] == [1, 2, 3, 4]


def test_a_long_run_of_commits_that_are_not_loads_hides_neither_the_load_state_nor_its_time(
    make_workspace: Any, spec: Any
) -> None:
    """Maintenance and operators commit to a bronze table without loading (a compaction, a vacuum: two commits, a
    table property): after 60 of them the newest load's state, time and row count are still found, so the next
    append lands nothing twice and freshness still knows when the source last loaded."""
    from foundation.engine.lakehouse.bronze import BronzeTable

    kit = make_workspace(
        sources=[spec("readings", {"type": "csv", "path": "landing/*.csv"}, load={"mode": "append"})],
        files={"landing/a.csv": CSV_HEADER + "1,1.5\n2,2.5\n"},
    )
    kit.ingest("readings")
    kit.land("landing/b.csv", CSV_HEADER + "3,3.5\n")
    kit.ingest("readings")
    bronze = BronzeTable(kit.bronze_uri("readings"))
    before = (bronze.state(), bronze.last_load_at(), bronze.previous_load_rows())
    assert len(before[0].files) == 2 and before[1] is not None and before[2] == 1
    version = bronze.version() or 0
    assert run_maintenance(kit.open().lakehouse_root, MaintenanceSettings()).ok  # compacts the two small files
    for days in range(30, 90):  # an operator (or a script) tuning the table: each a commit that is not a load
        DeltaTable(bronze.uri).alter.set_table_properties({"delta.logRetentionDuration": f"interval {days} days"})
    assert (bronze.version() or 0) - version == 61
    assert (bronze.state(), bronze.last_load_at(), bronze.previous_load_rows()) == before

    assert kit.ingest("readings").status == "nothing_new"
    assert [r["id"] for r in kit.rows("readings", order_by="id")] == [1, 2, 3]
    kit.land("landing/c.csv", CSV_HEADER + "4,4.5\n")
    assert kit.ingest("readings").rows_landed == 1
    assert [r["id"] for r in kit.rows("readings", order_by="id")] == [1, 2, 3, 4]


def test_the_cli_prints_a_summary_and_a_usecase_limits_the_run(
    make_workspace: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from foundation.cli.main import app

    kit = make_workspace()
    monkeypatch.setenv("FOUNDATION_WORKSPACE", str(kit.root))  # the CLI exports it: restored after the test
    lake = Path(kit.open().lakehouse_root)
    for table in ("bronze/uc/a", "bronze/other/b"):
        for i in range(3):
            write_deltalake(str(lake / table), pa.table({"x": [i]}), mode="append")
    result = CliRunner().invoke(app, ["--workspace", str(kit.root), "maintenance", "uc"])
    assert result.exit_code == 0, result.output
    assert "bronze/uc/a" in result.output and "bronze/other/b" not in result.output
    assert "1 table(s): compacted 3 small file(s), removed 0 file(s)" in result.output
    assert len(DeltaTable(str(lake / "bronze/other/b")).file_uris()) == 3  # left alone


# -- what maintenance refuses to do ---------------------------------------------------------------------------------


def test_a_retention_below_the_table_minimum_is_refused_by_deltalake_not_forced(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    uri = str(lake / "quality" / "check_results")
    for i in range(3):
        write_deltalake(uri, pa.table({"x": [i]}), mode="append")
    orphan = Path(uri) / "part-00000-orphan.parquet"
    shutil.copy(DeltaTable(uri).file_uris()[0], orphan)
    age(orphan, 1)
    report = run_maintenance(str(lake), MaintenanceSettings(retention_hours=2))
    (entry,) = report.tables
    assert not report.ok and entry.status == "failed"
    assert "maintenance.retention_hours (now 2)" in entry.notes[0]
    assert orphan.exists()


def test_a_crashed_first_write_leaves_a_folder_without_commit_whose_old_part_files_go(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    uri = str(lake / "bronze" / "uc" / "new_source")
    crash_a_write(uri, FEEDBACK_SCHEMA, feedback_batch)
    parts = sorted(Path(uri).glob("part-*.parquet"))
    assert parts and not list(Path(uri).glob("_delta_log/*.json"))
    for part in parts[1:]:
        age(part, 8)
    (entry,) = run_maintenance(str(lake), MaintenanceSettings(), dry_run=True).tables
    assert (entry.kind, entry.files_before, entry.files_removed) == ("uncommitted", len(parts), len(parts) - 1)
    assert len(list(Path(uri).glob("part-*.parquet"))) == len(parts)
    (entry,) = run_maintenance(str(lake), MaintenanceSettings()).tables
    assert [p.name for p in Path(uri).glob("part-*.parquet")] == [parts[0].name]


def test_a_table_holding_another_table_is_not_vacuumed(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    outer, inner = lake / "gold" / "uc" / "outer", lake / "gold" / "uc" / "outer" / "inner"
    write_deltalake(str(outer), pa.table({"x": [1]}))
    write_deltalake(str(inner), pa.table({"x": [2]}))
    for path in inner.rglob("*"):
        if path.is_file():
            age(path, 30)
    (entry,) = run_maintenance(str(lake), MaintenanceSettings()).tables
    assert entry.table == "gold/uc/outer" and "not vacuumed" in entry.notes[0]
    assert rows_of(str(inner)) == [(2,)]


# -- finding and choosing tables --------------------------------------------------------------------------------------


def test_every_table_of_the_lakehouse_is_found_and_chosen_by_settings_and_usecase(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    tables = [
        "bronze/fleet/telemetry",
        "bronze/fleet/telemetry__quarantine",
        "quality/check_results",
        "gold/fleet/daily_costs",
        "ml/fleet/failure_risk/predictions",
        "ml/fleet/failure_risk/api_predictions",
        "ml/_api/adhoc/api_predictions",
        "ml/_registry/promotions",
        "bronze/shop/orders",
    ]
    for table in tables:
        write_deltalake(str(lake / table), pa.table({"x": [1]}))
    (lake / "gold" / "_catalog").mkdir()
    (lake / "gold" / "_catalog" / "catalog.json").write_text("{}")
    found, uncommitted = find_tables(str(lake))
    assert found == sorted(tables) and uncommitted == []
    assert [table_kind(t) for t in tables] == [
        "bronze",
        "quarantine",
        "quality",
        "gold",
        "ml",
        "feedback",
        "feedback",
        "registry",
        "bronze",
    ]
    assert [table_usecase(t) for t in tables] == ["fleet"] * 2 + [None, "fleet", "fleet", "fleet", None, None, "shop"]
    default = MaintenanceSettings()
    assert [t for t in tables if selected(t, default, "fleet")] == tables[:2] + tables[3:6]
    only_logs = MaintenanceSettings(tables=["ml/*/api_predictions"], exclude=["ml/_api/*"])
    assert [t for t in tables if selected(t, only_logs, None)] == ["ml/fleet/failure_risk/api_predictions"]
    report = run_maintenance(str(lake), only_logs)
    assert [t.table for t in report.tables] == ["ml/fleet/failure_risk/api_predictions"]


# -- the documented settings are the real ones ---------------------------------------------------------------------


def documented_block(doc: str, heading: str) -> str:
    text = (Path(__file__).parents[3] / "docs" / doc).read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_documented_maintenance_block_is_the_defaults(tmp_path: Path) -> None:
    from foundation.core.workspace import Workspace

    block = documented_block("operations.md", "## Maintenance: compaction and vacuum")
    (tmp_path / "foundation.yaml").write_text(block, encoding="utf-8")
    assert Workspace.open(tmp_path).settings.maintenance == MaintenanceSettings()


def test_the_documented_allowed_roots_block_validates(tmp_path: Path) -> None:
    from foundation.core.workspace import Workspace

    block = documented_block("sources.md", "### Where a source may read")
    (tmp_path / "foundation.yaml").write_text(block, encoding="utf-8")
    roots = Workspace.open(tmp_path).allowed_roots
    assert roots.allows("/data/landing/2024/x.csv") and roots.allows("s3://acme-landing/fleet/x.parquet")
    assert not roots.allows("/data/landing2/x.csv")


def test_the_dry_run_estimate_counts_small_files_per_partition() -> None:
    one_each = [(("2024-01-01",), 10), (("2024-01-02",), 10)]
    assert small_files(one_each, target=100) == (0, 0)  # one file per partition: nothing to merge
    files = [(("a",), 10), (("a",), 20), (("a",), 500), (("b",), 5), (("b",), 5), (("b",), 5), (("c",), 1)]
    assert small_files(files, target=100) == (5, 2)  # a: 2 small -> 1, b: 3 -> 1; the big file and c's stay


def test_compaction_while_the_feedback_log_appends_loses_and_doubles_nothing(tmp_path: Path) -> None:
    import threading

    lake = tmp_path / "lake"
    uri = str(lake / "ml" / "uc" / "model" / "api_predictions")
    for flush in range(20):
        feedback_flush(uri, flush * 5, 5)
    errors: list[BaseException] = []

    def api_writer() -> None:  # the API keeps flushing while maintenance runs
        for flush in range(20, 60):
            try:
                feedback_flush(uri, flush * 5, 5)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    writer = threading.Thread(target=api_writer)
    writer.start()
    reports = [run_maintenance(str(lake), MaintenanceSettings()) for _ in range(3)]
    writer.join()
    assert errors == [] and all(r.ok for r in reports)
    assert sum(r.tables[0].files_compacted for r in reports) >= 20
    con = duckdb.connect()
    try:
        relation = delta_relation_sql(con, uri)
        assert con.execute(f"select count(*), count(distinct prediction_id) from {relation}").fetchall() == [(300, 300)]
    finally:
        con.close()
