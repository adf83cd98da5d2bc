"""Schema contract of a source: new, missing or retyped columns against the table, under evolve, warn or freeze.

Decided before anything is read: a refused load leaves the Delta version as it was.
"""

from __future__ import annotations

from typing import Any

import pytest

CONTRACT_CHECK = "schema_contract"


def events(spec, contract: str | None, mode: str = "append", columns: list[dict[str, Any]] | None = None):
    load: dict[str, Any] = {"mode": mode}
    if mode == "merge":
        load["primary_key"] = ["id"]
    return spec(
        "events",
        {"type": "csv", "path": "landing/events/*.csv"},
        load=load,
        columns=columns or [],
        checks=[{"schema": {"contract": contract}}] if contract else [],
    )


def column_types(kit) -> dict[str, str]:
    described = kit.query('DESCRIBE SELECT * FROM bronze."uc__events"')
    return {row["column_name"]: row["column_type"] for row in described if not row["column_name"].startswith("_")}


@pytest.mark.parametrize(("contract", "status"), [(None, "pass"), ("evolve", "pass"), ("warn", "warn")])
def test_a_new_column_lands_under_evolve_and_warn(contract, status, make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[events(spec, contract)])
    kit.land("landing/events/1.csv", "id,kind\n1,open\n")
    first = ingest(kit, "events")
    assert check_of(first, CONTRACT_CHECK)["observed"] == "unchanged"
    kit.land("landing/events/2.csv", "id,kind,source\n2,close,web\n")
    report = ingest(kit, "events")
    result = check_of(report, CONTRACT_CHECK)
    assert (result["status"], result["observed"], result["failing"]) == (status, "new: source", 1)
    assert result["description"] == f"schema contract: {contract or 'evolve'}"
    assert [(r["id"], r["source"]) for r in kit.rows("events", order_by="id")] == [(1, None), (2, "web")]


def test_freeze_refuses_a_new_column(make_workspace, spec, ingest, refused):
    kit = make_workspace(sources=[events(spec, "freeze")])
    kit.land("landing/events/1.csv", "id,kind\n1,open\n")
    first = ingest(kit, "events")
    assert first.delta_version == 0
    kit.land("landing/events/2.csv", "id,kind,source\n2,close,web\n")
    error = refused(kit, "events")
    assert str(error) == "uc/events: schema contract refused the load: new: source"
    (outcome,) = error.outcomes
    assert (outcome.check, outcome.status, outcome.failing) == (CONTRACT_CHECK, "fail", 1)
    assert kit.version("events") == 0
    assert column_types(kit) == {"id": "BIGINT", "kind": "VARCHAR"}


def test_freeze_refuses_a_missing_column(make_workspace, spec, ingest, refused):
    kit = make_workspace(sources=[events(spec, "freeze", mode="replace")])
    kit.land("landing/events/1.csv", "id,kind\n1,open\n")
    ingest(kit, "events")
    kit.land("landing/events/1.csv", "id\n2\n")
    assert str(refused(kit, "events")) == "uc/events: schema contract refused the load: missing: kind"


def test_freeze_passes_an_unchanged_schema(make_workspace, spec, ingest, check_of):
    kit = make_workspace(sources=[events(spec, "freeze")])
    kit.land("landing/events/1.csv", "id,kind\n1,open\n")
    ingest(kit, "events")
    kit.land("landing/events/2.csv", "id,kind\n2,close\n")
    result = check_of(ingest(kit, "events"), CONTRACT_CHECK)
    assert (result["status"], result["severity"], result["observed"]) == ("pass", "error", "unchanged")
    assert kit.count("events") == 2


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_a_retyped_column_is_refused_when_the_table_is_kept(mode, make_workspace, spec, ingest, refused):
    """Delta cannot retype a column in place: under any contract, append and merge refuse it."""
    columns = [{"name": "id", "type": "integer"}, {"name": "amount", "type": "integer"}]
    kit = make_workspace(sources=[events(spec, "evolve", mode=mode, columns=columns)])
    kit.land("landing/events/1.csv", "id,amount\n1,10\n")
    first = ingest(kit, "events")
    kit.write_source(events(spec, "evolve", mode=mode, columns=[columns[0], {"name": "amount", "type": "double"}]))
    kit.land("landing/events/2.csv", "id,amount\n2,10.5\n")
    error = refused(kit, "events")
    message = str(error)
    assert "retyped: amount int32->double" in message
    assert "a Delta table cannot change a column's type in place" in message
    assert "mode: replace" in message
    (outcome,) = error.outcomes
    assert (outcome.status, outcome.severity) == ("fail", "error")
    assert kit.version("events") == first.delta_version
    assert column_types(kit) == {"id": "INTEGER", "amount": "INTEGER"}


@pytest.mark.parametrize(("contract", "status"), [("evolve", "pass"), ("warn", "warn")])
def test_a_retyped_column_is_allowed_in_replace_mode(contract, status, make_workspace, spec, ingest, check_of):
    columns = [{"name": "id", "type": "integer"}, {"name": "amount", "type": "integer"}]
    kit = make_workspace(sources=[events(spec, contract, mode="replace", columns=columns)])
    kit.land("landing/events/1.csv", "id,amount\n1,10\n")
    ingest(kit, "events")
    kit.write_source(events(spec, contract, mode="replace", columns=[columns[0], {"name": "amount", "type": "double"}]))
    kit.land("landing/events/1.csv", "id,amount\n2,10.5\n")
    report = ingest(kit, "events")
    result = check_of(report, CONTRACT_CHECK)
    assert (result["status"], result["observed"]) == (status, "retyped: amount int32->double")
    assert column_types(kit) == {"id": "INTEGER", "amount": "DOUBLE"}
    assert [(r["id"], r["amount"]) for r in kit.rows("events")] == [(2, 10.5)]


def test_freeze_refuses_a_retype_even_in_replace_mode(make_workspace, spec, ingest, refused):
    columns = [{"name": "id", "type": "integer"}, {"name": "amount", "type": "integer"}]
    kit = make_workspace(sources=[events(spec, "freeze", mode="replace", columns=columns)])
    kit.land("landing/events/1.csv", "id,amount\n1,10\n")
    ingest(kit, "events")
    kit.write_source(events(spec, "freeze", mode="replace", columns=[columns[0], {"name": "amount", "type": "double"}]))
    assert "retyped: amount int32->double" in str(refused(kit, "events"))
    assert column_types(kit) == {"id": "INTEGER", "amount": "INTEGER"}


def test_string_and_timestamp_columns_are_not_seen_as_retyped(make_workspace, spec, ingest, check_of):
    """Delta hands strings back as large/view types and UTC timestamps with another zone name: same types."""
    columns = [
        {"name": "id", "type": "integer"},
        {"name": "at", "type": "timestamptz"},
        {"name": "kind", "type": "varchar"},
    ]
    kit = make_workspace(sources=[events(spec, "freeze", columns=columns)])
    kit.land("landing/events/1.csv", "id,at,kind\n1,2024-01-01 00:00:00+00,open\n")
    ingest(kit, "events")
    kit.land("landing/events/2.csv", "id,at,kind\n2,2024-01-02 00:00:00+00,close\n")
    assert check_of(ingest(kit, "events"), CONTRACT_CHECK)["observed"] == "unchanged"
