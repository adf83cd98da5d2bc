"""Fuzz the scoring routes with hostile text and numbers (hypothesis, derandomized): no answer is a 5xx, and every
row of the prediction log is JSON DuckDB reads (`json_valid`), holding exactly the text that was answered 200.

A lone surrogate (`"\\ud800"`) used to be answered 200 and stored as JSON that DuckDB refuses, after which
`json_extract_string(inputs, ...)` failed for the whole table (issue 14). The app runs in process with the
prediction log on (a real Delta table, read back with DuckDB), once with the fast routes and once without."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.catalog import delta_relation_sql
from serving.prediction_log import feedback_uri
from tests.serving.conftest import KEYS, RISK, auth

EXAMPLES = 120  # per path (fast routes on, off)

# any code point, lone surrogates included (hypothesis' own characters() never draws them)
CHARACTER = st.characters() | st.integers(0xD800, 0xDFFF).map(chr) | st.sampled_from(["\x00", "\u2028", "\ufeff"])
TEXT = st.text(alphabet=CHARACTER, max_size=12)
# JSON number tokens as a client may write them, valid or not for a double column
NUMBER_TOKENS = [
    "Infinity", "-Infinity", "NaN", "-NaN", "1e400", "-1e400", "1e-400", "-0.0", "0", "true", "false", "null",
    '"Infinity"', '"NaN"', '"1e400"', '"12.5"', "18446744073709551616", "1" + "0" * 30, "9" * 5000, "[]", "{}",
]  # fmt: skip
NUMBER = st.sampled_from(NUMBER_TOKENS) | st.floats().map(json.dumps) | st.integers().map(str)


def _text_token(text: str, raw_utf8: bool) -> bytes:
    """A JSON string for `text`: escaped (`\\ud800`), or its UTF-8 bytes with surrogates encoded as such."""
    if raw_utf8:
        return json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(text).encode()


@st.composite
def hostile_bodies(draw: Any) -> tuple[str, bytes, str | None]:
    """(route, body, the truck_type text when a 200 should store it) with one hostile value or key."""
    route = draw(st.sampled_from(["predict", "records", "split"]))
    row: dict[str, bytes] = {"truck_type": b'"van"', "temp": b"99.5", "vibration": b"3.6", "hours": b"4.0"}
    where = draw(st.sampled_from(["truck_type", "temp", "vibration", "hours", "a new key"]))
    raw = draw(st.booleans())
    text = None
    if where == "truck_type":
        text = draw(TEXT)
        row["truck_type"] = _text_token(text, raw)
    elif where == "a new key":
        row = {**row, _text_token(draw(TEXT), raw).decode("utf-8", "surrogatepass"): b"1"}
    else:
        row[where] = draw(NUMBER).encode()

    def key(name: str) -> bytes:
        return name.encode("utf-8", "surrogatepass") if name.startswith('"') else json.dumps(name).encode()

    if route == "split":
        columns = b", ".join(key(k) for k in row)
        body = b'{"dataframe_split": {"columns": [' + columns + b'], "data": [[' + b", ".join(row.values()) + b"]]}}"
    else:
        obj = b"{" + b", ".join(key(k) + b": " + v for k, v in row.items()) + b"}"
        body = (b'{"instances": [' if route == "predict" else b'{"dataframe_records": [') + obj + b"]}"
    return route, body, text


def test_hostile_text_and_numbers_never_5xx_and_the_log_stays_valid_json(
    own_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.app import create_app

    monkeypatch.setenv("FOUNDATION_API_KEYS", KEYS)
    statuses: Counter[int] = Counter()
    stored: dict[str, str] = {}  # prediction id -> the truck_type text answered 200
    answered = 0
    for fast in ("true", "false"):
        monkeypatch.setenv("FOUNDATION_API__FAST_ROUTES", fast)
        with TestClient(create_app(own_workspace), raise_server_exceptions=False) as client:

            @given(case=hostile_bodies())
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
            def send(case: tuple[str, bytes, str | None]) -> None:
                nonlocal answered
                route, body, text = case
                url = f"/v1/models/{RISK}/{'predict' if route == 'predict' else 'invocations'}"
                response = client.post(url, headers={**auth(), "Content-Type": "application/json"}, content=body)
                statuses[response.status_code] += 1
                assert response.status_code < 500, (body[:300], response.text[:300])
                answer = response.json()  # every answer, refusals included, is JSON
                if response.status_code == 200:
                    answered += 1
                    if route == "predict" and text is not None:
                        stored[answer["predictions"][0]["prediction_id"]] = text
                else:
                    assert answer["errors"][0]["field"], answer

            send()
    assert statuses[200] > 20 and statuses[422] > 20, statuses  # both kinds were drawn
    assert set(statuses) <= {200, 422}, statuses

    con = duckdb.connect()
    table = delta_relation_sql(con, feedback_uri(Workspace.open(own_workspace), RISK))
    rows, valid = con.execute(
        f"select count(*), count(*) filter (where json_valid(inputs) and json_valid(prediction)) from {table}"
    ).fetchall()[0]
    assert rows == valid == answered
    # and the query that broke for the whole table works, with the exact text that was answered
    read = dict(
        con.execute(f"select prediction_id, json_extract_string(inputs, '$.truck_type') from {table}").fetchall()
    )
    assert stored and {pid: read[pid] for pid in stored} == stored
