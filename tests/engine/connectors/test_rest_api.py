"""The rest_api extract against a real HTTP server on 127.0.0.1 (tests/rest_server.py): paginators, auth, retries,
rate limits, bad responses and bounds. These call the connector's `stage()` and read the staged NDJSON back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from rest_server import Reply, RestServer, Seen, paged, sequence

from foundation.engine.connectors.rest_api import fill_path, public_url, select_records
from foundation.engine.connectors.staging import ExtractError, StagedExtract, StageRequest, stage_extract
from foundation.specs.source import ExtractSpec, RestApiExtract

RECORDS = [{"id": i, "name": f"item {i}"} for i in range(1, 8)]
FAST_RETRIES = {"max_attempts": 3, "backoff_factor": 0.01, "max_delay": 0.1}


def extract(api: RestServer, **fields: Any) -> RestApiExtract:
    data = {"type": "rest_api", "base_url": api.url, "path": "items", "retries": FAST_RETRIES, **fields}
    model = TypeAdapter(ExtractSpec).validate_python(data)
    assert isinstance(model, RestApiExtract)
    return model


def stage(tmp_path: Path, spec: RestApiExtract, last_cursor: str | None = None) -> StagedExtract:
    folder = tmp_path / f"staging-{time.monotonic_ns()}"
    folder.mkdir()
    request = StageRequest(tmp_path, "uc/items", spec, last_cursor, folder, batch_rows=4)
    return stage_extract(request)


def staged_records(staged: StagedExtract) -> list[dict[str, Any]]:
    return [json.loads(line) for path in staged.paths for line in Path(path).read_text().splitlines()]


# -- paginators ---------------------------------------------------------------------------------------------------


def test_page_number_paginator_follows_total_pages_and_rotates_files(tmp_path):
    with RestServer() as api:
        api.route("/items", paged(RECORDS, page_size=3))
        staged = stage(
            tmp_path,
            extract(
                api,
                data_selector="data",
                paginator={"type": "page_number", "base_page": 1, "total_path": "total_pages"},
            ),
        )
    assert staged_records(staged) == RECORDS
    assert (staged.rows, staged.notes["pages"], len(staged.paths)) == (7, 3, 2)  # files of batch_rows=4 records
    assert staged.file_format == "ndjson" and staged.origin == api.url + "items"


def test_offset_paginator_sends_offset_and_limit(tmp_path):
    def handler(seen: Seen) -> Reply:
        offset, limit = int(seen.query["offset"]), int(seen.query["limit"])
        return Reply(body={"results": {"items": RECORDS[offset : offset + limit]}, "total": len(RECORDS)})

    with RestServer() as api:
        api.route("/items", handler)
        spec = extract(
            api, data_selector="results.items", paginator={"type": "offset", "limit": 5, "total_path": "total"}
        )
        staged = stage(tmp_path, spec)
    assert staged_records(staged) == RECORDS
    assert [(r.query["offset"], r.query["limit"]) for r in api.hits("items")] == [("0", "5"), ("5", "5")]


def test_cursor_paginator_sends_back_the_cursor_from_the_body(tmp_path):
    def handler(seen: Seen) -> Reply:
        start = int(seen.query.get("after", 0))
        chunk = RECORDS[start : start + 3]
        following = str(start + 3) if start + 3 < len(RECORDS) else None
        return Reply(body={"data": chunk, "meta": {"next_cursor": following}})

    with RestServer() as api:
        api.route("/items", handler)
        spec = extract(
            api,
            data_selector="data",
            paginator={"type": "cursor", "cursor_path": "meta.next_cursor", "cursor_param": "after"},
        )
        staged = stage(tmp_path, spec)
    assert staged_records(staged) == RECORDS
    assert [r.query.get("after") for r in api.hits("items")] == [None, "3", "6"]


def test_json_link_paginator_follows_relative_next_links(tmp_path):
    def handler(seen: Seen) -> Reply:
        page = int(seen.query.get("p", 0))
        chunk = RECORDS[page * 4 : page * 4 + 4]
        return Reply(body={"items": chunk, "links": {"next": f"/items?p={page + 1}" if page == 0 else None}})

    with RestServer() as api:
        api.route("/items", handler)
        staged = stage(
            tmp_path,
            extract(api, data_selector="items", paginator={"type": "json_link", "next_url_path": "links.next"}),
        )
    assert staged_records(staged) == RECORDS


def test_header_link_paginator_follows_the_link_header(tmp_path):
    def handler(seen: Seen) -> Reply:
        page = int(seen.query.get("page", 1))
        headers = {"Link": f'<{api.url}items?page={page + 1}>; rel="next"'} if page < 3 else {}
        return Reply(body=RECORDS[(page - 1) * 3 : page * 3], headers=headers)

    with RestServer() as api:
        api.route("/items", handler)
        staged = stage(tmp_path, extract(api, paginator={"type": "header_link"}))
    assert staged_records(staged) == RECORDS
    assert staged.notes["pages"] == 3


# -- auth ---------------------------------------------------------------------------------------------------------


def guarded(check) -> Any:
    def handler(seen: Seen) -> Reply:
        return Reply(body={"data": RECORDS}) if check(seen) else Reply(401, {"error": "who are you"})

    return handler


@pytest.mark.parametrize(
    ("auth", "check"),
    [
        ({"type": "bearer", "token": "${T_SECRET}"}, lambda s: s.headers.get("authorization") == "Bearer pa55"),
        (
            {"type": "api_key", "name": "X-API-Key", "api_key": "${T_SECRET}"},
            lambda s: s.headers.get("x-api-key") == "pa55",
        ),
        (
            {"type": "api_key", "name": "key", "api_key": "${T_SECRET}", "location": "query"},
            lambda s: s.query.get("key") == "pa55",
        ),
        (
            {"type": "http_basic", "username": "ops", "password": "${T_SECRET}"},
            lambda s: s.headers.get("authorization") == "Basic b3BzOnBhNTU=",  # ops:pa55
        ),
    ],
    ids=["bearer", "api_key_header", "api_key_query", "http_basic"],
)
def test_each_auth_kind_sends_the_secret_from_the_environment(tmp_path, monkeypatch, auth, check):
    monkeypatch.setenv("T_SECRET", "pa55")
    with RestServer() as api:
        api.route("/items", guarded(check))
        staged = stage(tmp_path, extract(api, data_selector="data", auth=auth))
    assert staged.rows == len(RECORDS)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_name_the_variable_never_the_value(tmp_path, monkeypatch, status):
    monkeypatch.setenv("T_SECRET", "very-secret-value")
    with RestServer() as api:
        api.route("/items", lambda seen: Reply(status, {"error": f"bad token {seen.headers.get('authorization')}"}))
        with pytest.raises(ExtractError) as caught:
            stage(tmp_path, extract(api, auth={"type": "bearer", "token": "${T_SECRET}"}))
    message = str(caught.value)
    assert "T_SECRET" in message and str(status) in message and "uc/items" in message
    assert "very-secret-value" not in message
    assert len(api.hits("items")) == 1  # not retried


def test_a_literal_credential_is_refused_by_the_spec(tmp_path):
    with pytest.raises(ValidationError, match="environment reference"):
        TypeAdapter(ExtractSpec).validate_python(
            {"type": "rest_api", "base_url": "http://x/", "path": "a", "auth": {"type": "bearer", "token": "abc123"}}
        )


# -- retries, rate limits, timeouts -------------------------------------------------------------------------------


def test_a_500_is_retried_then_the_load_goes_on(tmp_path):
    with RestServer() as api:
        api.route("/items", sequence(Reply(500, {"error": "boom"}), Reply(body={"data": RECORDS})))
        staged = stage(tmp_path, extract(api, data_selector="data"))
    assert staged.rows == len(RECORDS)
    assert len(api.hits("items")) == 2 and staged.notes["retried_attempts"] == 1


def test_429_waits_for_retry_after_then_succeeds(tmp_path):
    stamps: list[float] = []

    def stamped(reply: Reply):
        def handler(seen: Seen) -> Reply:
            stamps.append(time.monotonic())
            return reply

        return handler

    with RestServer() as api:
        api.route(
            "/items",
            sequence(
                stamped(Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"})), stamped(Reply(body=RECORDS))
            ),
        )
        # the backoff alone would wait 0.01 s: only Retry-After explains a wait of a second (max_delay caps it)
        staged = stage(tmp_path, extract(api, retries={"max_attempts": 3, "backoff_factor": 0.01, "max_delay": 5}))
    assert staged.rows == len(RECORDS)
    assert stamps[1] - stamps[0] >= 0.9


def test_a_server_that_keeps_failing_gives_up_after_max_attempts(tmp_path):
    with RestServer() as api:
        api.route("/items", lambda seen: Reply(503, {"error": "down"}))
        with pytest.raises(ExtractError, match=r"503.*after 3 attempt"):
            stage(tmp_path, extract(api))
    assert len(api.hits("items")) == 3


def test_a_timeout_is_retried_then_reported(tmp_path):
    with RestServer() as api:
        api.route("/items", lambda seen: Reply(body=RECORDS, delay=1.0))
        spec = extract(api, timeout=0.2, retries={"max_attempts": 2, "backoff_factor": 0.01, "max_delay": 0.1})
        with pytest.raises(ExtractError, match=r"timed out after 0.2s, 2 attempt"):
            stage(tmp_path, spec)
    assert len(api.hits("items")) == 2


def test_an_unreachable_server_is_a_clear_error_with_the_sources_help(tmp_path):
    with RestServer() as api:
        url = api.url
    spec = TypeAdapter(ExtractSpec).validate_python(
        {
            "type": "rest_api",
            "base_url": url,
            "path": "items",
            "retries": {"max_attempts": 1},
            "help": "Start it with `make api`.",
        }
    )
    with pytest.raises(ExtractError, match=r"cannot reach http://127\.0\.0\.1:\d+/items .*Start it with `make api`"):
        stage(tmp_path, spec)


# -- bad responses and bounds -------------------------------------------------------------------------------------


def test_malformed_json_names_the_url_and_the_page(tmp_path):
    def handler(seen: Seen) -> Reply:
        if seen.query.get("page") == "2":
            return Reply(body=b'{"data": [{"id": 4}, ')
        return paged(RECORDS, 3)(seen)

    with RestServer() as api:
        api.route("/items", handler)
        spec = extract(
            api, data_selector="data", paginator={"type": "page_number", "base_page": 1, "total_path": "total_pages"}
        )
        with pytest.raises(
            ExtractError, match=r"page 2 of http://127\.0\.0\.1:\d+/items: the response is not valid JSON"
        ):
            stage(tmp_path, spec)


def test_a_missing_data_selector_lists_the_keys_found(tmp_path):
    with RestServer() as api:
        api.route("/items", lambda seen: Reply(body={"results": RECORDS}))
        with pytest.raises(ExtractError, match=r"data_selector 'data' is not in the response .*results"):
            stage(tmp_path, extract(api, data_selector="data"))


def test_a_page_that_repeats_forever_stops_with_an_error(tmp_path):
    with RestServer() as api:  # the API ignores the page parameter (a wrong page_param name, typically)
        api.route("/items", lambda seen: Reply(body={"data": RECORDS[:3], "has_more": True}))
        spec = extract(
            api,
            data_selector="data",
            paginator={"type": "page_number", "page_param": "pg", "has_more_path": "has_more"},
        )
        with pytest.raises(ExtractError, match=r"page 2 .* is the same as page 1"):
            stage(tmp_path, spec)
    assert len(api.hits("items")) == 2


def test_endless_distinct_pages_stop_at_max_pages(tmp_path):
    with RestServer() as api:
        api.route("/items", lambda seen: Reply(body={"data": [{"id": seen.query["page"]}], "has_more": True}))
        spec = extract(
            api, data_selector="data", max_pages=5, paginator={"type": "page_number", "has_more_path": "has_more"}
        )
        with pytest.raises(ExtractError, match="more than max_pages=5 pages"):
            stage(tmp_path, spec)
    assert len(api.hits("items")) == 6


# -- parent / child -----------------------------------------------------------------------------------------------


def test_child_endpoint_is_fetched_for_each_parent_record(tmp_path):
    trucks = [{"id": "T1", "depot": "north"}, {"id": "T2", "depot": "south"}, {"id": "T3", "depot": "north"}]

    def repairs(seen: Seen) -> Reply:
        truck = seen.path.split("/")[2]
        return Reply(body={"data": [{"repair": f"{truck}-{n}", "kind": seen.query.get("kind")} for n in range(2)]})

    with RestServer() as api:
        api.route("/trucks", paged(trucks, page_size=2))
        for truck in trucks:
            api.route(f"/trucks/{truck['id']}/repairs", repairs)
        spec = extract(
            api,
            path="trucks/{truck}/repairs",
            params={"truck": {"type": "resolve", "field": "id"}, "kind": "all"},
            data_selector="data",
            parent={
                "path": "trucks",
                "data_selector": "data",
                "paginator": {"type": "page_number", "base_page": 1, "total_path": "total_pages"},
            },
            include_from_parent=["depot"],
        )
        staged = stage(tmp_path, spec)
    records = staged_records(staged)
    assert [r["repair"] for r in records] == ["T1-0", "T1-1", "T2-0", "T2-1", "T3-0", "T3-1"]
    assert {r["kind"] for r in records} == {"all"} and records[2]["parent_depot"] == "south"
    assert staged.notes["parent_records"] == 3 and staged.notes["pages"] == 2 + 3


def test_resolve_params_need_a_parent():
    with pytest.raises(ValidationError, match="need a parent"):
        TypeAdapter(ExtractSpec).validate_python(
            {
                "type": "rest_api",
                "base_url": "http://x/",
                "path": "a/{id}",
                "params": {"id": {"type": "resolve", "field": "id"}},
            }
        )


# -- pure helpers -------------------------------------------------------------------------------------------------


def test_select_records_walks_dotted_paths_and_jsonpath():
    body = {"a": {"b": [{"x": 1}]}, "one": {"x": 2}, "none": None}
    assert select_records(body, "a.b") == [{"x": 1}]
    assert select_records(body, "$.a.b") == [{"x": 1}]
    assert select_records(body, "one") == [{"x": 2}]
    assert select_records(body, "none") == []
    assert select_records(body, "missing") is None
    assert select_records([1, 2], "$") == [1, 2]
    assert select_records({"a": [{"b": 1}, {"b": 2}]}, "a[*].b") == [1, 2]


def test_public_url_drops_credentials_and_query():
    assert (
        public_url("https://user:pw@api.example.com:8443/v1/items?api_key=abc")
        == "https://api.example.com:8443/v1/items"
    )


def test_fill_path_puts_unused_values_in_the_query():
    assert fill_path("trucks/{id}/repairs", {"id": "T1", "depot": "n"}) == ("trucks/T1/repairs", {"depot": "n"})


def test_a_base_url_that_is_not_a_url_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("T_API_URL", "workshop.local/api")  # scheme forgotten
    spec = TypeAdapter(ExtractSpec).validate_python({"type": "rest_api", "base_url": "${T_API_URL}", "path": "items"})
    with pytest.raises(ExtractError, match="is not a valid http"):
        stage(tmp_path, spec)
