"""Bad input loses nothing: every row read is landed, quarantined with a reason, or counted; the counts reconcile."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from foundation.engine.ingest.runner import InvalidRowsError

SMALL_BATCHES = {"ingest": {"batch_rows": 2}}

# Lines (1 = header): 2 ok, 3 bad temp, 4 missing a column, 5 ok, 6 extra column, 7 bad date and missing id,
# 8 ok, 9 two columns short (one line, counted once).
MESSY_CSV = (
    "id,temp,day,note\n"
    "1,20.5,2024-01-01,fine\n"
    "2,hot,2024-01-02,bad temp\n"
    "3,21.0,2024-01-03\n"
    "4,22.5,2024-01-04,fine\n"
    "5,23.0,2024-01-05,extra,column\n"
    ",24.0,not a day,bad day and no id\n"
    "7,25.5,2024-01-07,fine\n"
    "8,26.0\n"
)
MESSY_COLUMNS = [
    {"name": "id", "type": "integer", "required": True},
    {"name": "temp", "type": "double"},
    {"name": "day", "type": "date"},
]


@pytest.fixture
def messy(make_workspace, spec):
    def make(**fields):
        return make_workspace(
            sources=[spec("messy", {"type": "csv", "path": "landing/messy.csv"}, columns=MESSY_COLUMNS, **fields)],
            files={"landing/messy.csv": MESSY_CSV},
            settings=SMALL_BATCHES,
        )

    return make


def test_ragged_and_unparsable_rows_are_quarantined_with_lines_and_reasons(messy):
    kit = messy()
    report = kit.ingest("messy")
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (8, 3, 5)
    assert report.rows_read == report.rows_landed + report.rows_quarantined
    assert report.reconciles
    assert [r["id"] for r in kit.rows("messy", order_by="id")] == [1, 4, 7]

    quarantined = kit.quarantine("messy")
    assert len(quarantined) == 5
    assert {q["_load_id"] for q in quarantined} == {report.load_id}
    typed = {q["_invalid_reason"]: json.loads(q["_raw_record"]) for q in quarantined if q["_rule"] == "type"}
    assert typed == {
        "temp: cannot read 'hot' as double": {"id": "2", "temp": "hot", "day": "2024-01-02", "note": "bad temp"},
        "id: required value is missing; day: cannot read 'not a day' as date": {
            "id": None,
            "temp": "24.0",
            "day": "not a day",
            "note": "bad day and no id",
        },
    }
    parsed = [(q["_source_line"], q["_raw_record"], q["_invalid_reason"]) for q in quarantined if q["_rule"] == "parse"]
    assert [(line, raw) for line, raw, _ in parsed] == [
        (4, "3,21.0,2024-01-03"),
        (6, "5,23.0,2024-01-05,extra,column"),
        (9, "8,26.0"),
    ]
    assert parsed[0][2].startswith("MISSING COLUMNS")
    assert parsed[1][2].startswith("TOO MANY COLUMNS")
    assert all(q["_source_file"] == str(kit.root / "landing/messy.csv") for q in quarantined)
    assert report.invalid_reasons == {
        "temp: cannot read as double": 1,
        "id: required value is missing; day: cannot read as date": 1,
        "MISSING COLUMNS": 2,
        "TOO MANY COLUMNS": 1,
    }


def test_nothing_is_lost_every_id_is_landed_or_quarantined(messy):
    kit = messy()
    kit.ingest("messy")
    landed = {str(r["id"]) for r in kit.rows("messy")}
    quarantined = set()
    for q in kit.quarantine("messy"):
        raw = q["_raw_record"]
        quarantined.add(json.loads(raw)["id"] if q["_rule"] == "type" else raw.split(",")[0])
    assert landed | quarantined == {"1", "2", "3", "4", "5", None, "7", "8"}
    assert not landed & quarantined


def test_a_line_with_several_parse_errors_is_one_quarantined_row(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("wide", {"type": "csv", "path": "landing/wide.csv"})],
        files={"landing/wide.csv": "a,b,c,d\n1,2,3,4\n5\n6,7,8,9\n"},
    )
    report = kit.ingest("wide")
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (3, 2, 1)
    (row,) = kit.quarantine("wide")
    assert (row["_source_line"], row["_raw_record"]) == (3, "5")


def test_an_undeclared_value_beyond_the_sniffed_sample_is_quarantined(make_workspace, spec):
    """DuckDB infers `count` as a number from its sample; a later value that does not fit is a reject, not a crash."""
    rows = "".join(f"{i},{i * 10}\n" for i in range(1, 25_001))
    kit = make_workspace(
        sources=[spec("late", {"type": "csv", "path": "landing/late.csv"})],
        files={"landing/late.csv": "id,count\n" + rows + "25001,n/a\n25002,7\n"},
    )
    report = kit.ingest("late")
    assert ("count", "int64") in report.schema
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (25_002, 25_001, 1)
    (q,) = kit.quarantine("late")
    assert (q["_source_line"], q["_raw_record"], q["_rule"]) == (25_002, "25001,n/a", "parse")
    assert q["_invalid_reason"].startswith("CAST")
    assert kit.count("late") == 25_001


def test_rejects_are_counted_once_with_an_incremental_cursor(make_workspace, spec):
    """The cursor is computed by a second query over the same files: its CSV rejects must not be counted twice."""
    kit = make_workspace(
        sources=[
            spec(
                "ticks",
                {"type": "csv", "path": "landing/*.csv"},
                load={"mode": "append", "incremental": {"cursor": "seq"}},
                columns=[{"name": "seq", "type": "integer"}, {"name": "v", "type": "double"}],
            )
        ],
        files={"landing/a.csv": "seq,v\n1,1.0\n2\n3,x\n4,4.0\n"},
    )
    report = kit.ingest("ticks")
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (4, 2, 2)
    assert len(kit.quarantine("ticks")) == 2


def test_date_with_a_declared_format(make_workspace, spec):
    kit = make_workspace(
        sources=[
            spec(
                "eu",
                {"type": "csv", "path": "landing/eu.csv"},
                columns=[
                    {"name": "id", "type": "integer"},
                    {"name": "at", "type": "timestamp", "format": "%d/%m/%Y %H:%M"},
                ],
            )
        ],
        files={"landing/eu.csv": "id,at\n1,31/12/2024 23:59\n2,2024-12-31 23:59\n"},
    )
    report = kit.ingest("eu")
    assert (report.rows_landed, report.rows_quarantined) == (1, 1)
    assert [(r["id"], r["at"]) for r in kit.rows("eu")] == [(1, datetime(2024, 12, 31, 23, 59))]
    (q,) = kit.quarantine("eu")
    assert q["_invalid_reason"] == "at: cannot read '2024-12-31 23:59' as timestamp with format %d/%m/%Y %H:%M"


def test_fail_mode_raises_and_lands_nothing(messy):
    kit = messy(on_invalid_rows="fail")
    with pytest.raises(InvalidRowsError, match="on_invalid_rows is 'fail'") as raised:
        kit.ingest("messy")
    assert "temp: cannot read 'hot' as double" in str(raised.value)
    assert kit.version("messy") is None
    assert kit.query("SELECT count(*) AS n FROM duckdb_views() WHERE view_name LIKE 'uc__messy%'") == [{"n": 0}]


def test_fail_mode_on_parse_errors_alone_keeps_the_previous_version(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("strict", {"type": "csv", "path": "landing/*.csv"}, on_invalid_rows="fail")],
        files={"landing/a.csv": "id,v\n1,a\n2,b\n"},
        settings=SMALL_BATCHES,
    )
    kit.ingest("strict")
    kit.land("landing/b.csv", "id,v\n3,c\n4\n5,e\n")
    with pytest.raises(InvalidRowsError, match="MISSING COLUMNS"):
        kit.ingest("strict")
    assert kit.version("strict") == 0
    assert [r["id"] for r in kit.rows("strict", order_by="id")] == [1, 2]


def test_drop_with_count_counts_and_writes_no_quarantine(messy):
    kit = messy(on_invalid_rows="drop-with-count")
    report = kit.ingest("messy")
    assert (report.rows_read, report.rows_landed, report.rows_dropped, report.rows_quarantined) == (8, 3, 5, 0)
    assert report.reconciles
    assert report.quarantine_version is None
    assert kit.query("SELECT count(*) AS n FROM duckdb_views() WHERE view_name = 'uc__messy__quarantine'") == [{"n": 0}]
    assert sum(report.invalid_reasons.values()) == 5


def test_max_invalid_percent_exceeded_raises_and_lands_nothing(messy):
    kit = messy(max_invalid_percent=50)  # 5 of 8 rows are invalid: 62.5%
    with pytest.raises(InvalidRowsError, match=r"5 of 8 rows are invalid, above max_invalid_percent 50"):
        kit.ingest("messy")
    assert kit.version("messy") is None
    assert not (kit.root / ".foundation/lakehouse/bronze/uc/messy__quarantine").exists()


def test_max_invalid_percent_not_exceeded_lands(messy):
    kit = messy(max_invalid_percent=65)
    report = kit.ingest("messy")
    assert (report.rows_landed, report.rows_quarantined) == (3, 5)


# -- PII and lineage ----------------------------------------------------------------------------------------------

PEOPLE_CSV = (
    "id,email,phone,street_address\n"
    "1,ann@example.com,+33 1,1 Main St\n"
    "2,bob@example.com,+33 2,2 Main St\n"
    "3,ann@example.com,,3 Main St\n"
)


def people_spec(spec):
    return spec(
        "people",
        {"type": "csv", "path": "landing/people.csv"},
        columns=[
            {"name": "id", "type": "integer"},
            {"name": "email", "type": "varchar", "pii": True},
            {"name": "phone", "pii": True, "pii_handling": "keep"},
            {"name": "street_address", "pii": True, "pii_handling": "drop"},
        ],
    )


def test_pii_columns_are_hashed_kept_or_dropped(make_workspace, spec):
    kit = make_workspace(sources=[people_spec(spec)], files={"landing/people.csv": PEOPLE_CSV})
    report = kit.ingest("people")
    assert [name for name, _ in report.schema] == ["id", "email", "phone", "_load_id", "_loaded_at", "_source_file"]
    rows = kit.rows("people", order_by="id")
    emails = [r["email"] for r in rows]
    assert "ann@example.com" not in emails and "bob@example.com" not in emails
    assert emails[0] == emails[2] != emails[1]  # same raw value -> same hash
    assert emails[0] == hashlib.sha256(b"ann@example.com").hexdigest()  # no salt configured
    assert [r["phone"] for r in rows] == ["+33 1", "+33 2", None]
    assert all("street_address" not in r for r in rows)


def test_pii_salt_changes_the_hash(make_workspace, spec):
    kit = make_workspace(
        sources=[people_spec(spec)],
        files={"landing/people.csv": PEOPLE_CSV},
        settings={"ingest": {"pii_salt": "pepper"}},
    )
    kit.ingest("people")
    (first, *_) = kit.rows("people", order_by="id")
    assert first["email"] == hashlib.sha256(b"pepperann@example.com").hexdigest()


def test_pii_value_in_a_quarantined_row_is_hashed_too(make_workspace, spec):
    """The quarantine keeps the raw record of invalid rows: personal data must not leak through it."""
    kit = make_workspace(
        sources=[
            spec(
                "people",
                {"type": "csv", "path": "landing/people.csv"},
                columns=[{"name": "id", "type": "integer"}, {"name": "email", "type": "varchar", "pii": True}],
            )
        ],
        files={"landing/people.csv": "id,email\n1,ann@example.com\nx,bob@example.com\n"},
    )
    kit.ingest("people")
    (q,) = kit.quarantine("people")
    assert "bob@example.com" not in q["_raw_record"]
    assert json.loads(q["_raw_record"])["email"] == hashlib.sha256(b"bob@example.com").hexdigest()


def test_lineage_columns_are_filled(make_workspace, spec):
    kit = make_workspace(
        sources=[spec("plain", {"type": "csv", "path": "landing/*.csv"})],
        files={"landing/a.csv": "id\n1\n2\n", "landing/b.csv": "id\n3\n"},
    )
    before = datetime.now(UTC)
    report = kit.ingest("plain")
    after = datetime.now(UTC)
    rows = kit.rows("plain", order_by="id")
    assert {r["_load_id"] for r in rows} == {report.load_id}
    assert report.load_id.split("-")[0] == f"{rows[0]['_loaded_at'].astimezone(UTC):%Y%m%dT%H%M%SZ}"
    loaded_at = {r["_loaded_at"] for r in rows}
    assert len(loaded_at) == 1
    (when,) = loaded_at
    assert before - timedelta(seconds=1) <= when <= after
    assert [r["_source_file"] for r in rows] == [
        str(kit.root / "landing/a.csv"),
        str(kit.root / "landing/a.csv"),
        str(kit.root / "landing/b.csv"),
    ]
    types = {r["column_name"]: r["column_type"] for r in kit.query("DESCRIBE SELECT * FROM bronze.uc__plain")}
    assert types["_loaded_at"] == "TIMESTAMP WITH TIME ZONE"
    assert date.today() - when.date() <= timedelta(days=1)


# Not UTF-8: Latin-1 text, a quoted line break with bytes never valid in UTF-8, a broken multi-byte sequence.
INVALID_UTF8_LINES = [b"2,caf\xe9 cr\xe8me", b'3,"two\nlines \xff\xfe"', b"5,\xc3(\xa0"]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("gzipped", [False, True], ids=["csv", "csv.gz"])
def test_a_line_that_is_not_utf8_keeps_its_exact_bytes_in_the_quarantine(make_workspace, spec, newline, gzipped):
    """Issue 14: the quarantine's raw line of an invalid-UTF-8 row lost bytes ('caf??' for b'caf\\xe9')."""
    import gzip

    lines = [b"id,label", b"1,ok", *INVALID_UTF8_LINES[:2], b"4,fine", INVALID_UTF8_LINES[2], b"6,end"]
    content = newline.join(line.replace(b"\n", newline) for line in lines) + newline
    name = "landing/labels.csv" + (".gz" if gzipped else "")
    kit = make_workspace(
        sources=[spec("labels", {"type": "csv", "path": name}, columns=[{"name": "id", "type": "integer"}])],
        files={name: gzip.compress(content) if gzipped else content},
    )
    report = kit.ingest("labels")
    assert (report.rows_read, report.rows_landed, report.rows_quarantined) == (6, 3, 3)
    quarantined = kit.quarantine("labels")
    assert [q["_rule"] for q in quarantined] == ["parse"] * 3
    expected = [line.replace(b"\n", newline) for line in INVALID_UTF8_LINES]
    assert [q["_raw_bytes"] for q in quarantined] == expected  # the line recovered exactly
    assert "2,caf?" in quarantined[0]["_raw_record"]  # DuckDB's text stays, for people (it loses bytes: 'caf??cr??e')


def test_raw_bytes_are_null_for_lines_whose_text_is_exact(messy):
    kit = messy()
    kit.ingest("messy")
    assert {q["_raw_bytes"] for q in kit.quarantine("messy")} == {None}
