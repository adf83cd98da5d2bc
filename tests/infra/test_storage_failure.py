"""The object store goes away half-way through an ingest (moto's S3 server, tests/infra/s3_server.py): every table is
at its previous Delta version or at the new complete one, never a partial one, and the re-run completes with no
duplicates.

The endpoint goes away after the first source's commit through the load's own progress hook (`on_end`): from then on
the workspace's storage options name a closed port, as a stopped or unreachable object store does. Stopping moto
itself would lose the bucket (it keeps it in memory), so there would be no previous version to compare with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pg_server import free_port
from s3_server import SECRET_KEY, S3Server, running_s3

from foundation.core.workspace import Workspace
from foundation.dagster_defs.ingest_run import ingest_now
from foundation.engine.lakehouse.object_store import open_delta

pytestmark = pytest.mark.slow

BUCKET = "halfway"
FAST_FAIL = {"max_retries": "1", "retry_timeout": "5s", "connect_timeout": "2s", "timeout": "10s"}
TABLES = ("depots", "trucks")  # the order they load in (by name)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3() as server:
        server.create_bucket(BUCKET)
        yield server


def settings(endpoint: str) -> dict:
    options = {"AWS_ACCESS_KEY_ID": "${AWS_ACCESS_KEY_ID}", "AWS_SECRET_ACCESS_KEY": "${AWS_SECRET_ACCESS_KEY}"}
    options |= {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", **FAST_FAIL}
    return {"lakehouse": {"root": f"s3://{BUCKET}/foundation", "storage_options": options}}


class EndpointGoesAway:
    """A load progress (`LoadProgress`) that points the storage options at a closed port once `after` has ended."""

    def __init__(self, workspace: Workspace, after: str) -> None:
        self.workspace, self.after = workspace, after

    def on_start(self, source: str) -> None:
        pass

    def on_rows(self, source: str, rows_read: int) -> None:
        pass

    def on_end(self, source: str, failed: bool) -> None:
        if source == self.after:
            self.workspace.settings.lakehouse.storage_options["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"


def versions_and_rows(workspace: Workspace) -> dict[str, tuple[int, int, int]]:
    """Per table: (Delta version, rows, distinct ids), read through the workspace's storage options."""
    found = {}
    for name in TABLES:
        table = open_delta(workspace, workspace.bronze_uri("uc", name)).to_pyarrow_table(columns=["id"])
        found[name] = (
            open_delta(workspace, workspace.bronze_uri("uc", name)).version(),
            table.num_rows,
            len(set(table["id"].to_pylist())),
        )
    return found


def test_store_gone_after_first_commit_leaves_previous_versions(make_workspace, spec, s3, monkeypatch) -> None:
    for key, value in s3.environ().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only the profile's setting names the endpoint
    columns = [{"name": "id", "type": "integer", "required": True}, {"name": "name", "type": "varchar"}]
    sources = [spec(n, {"type": "csv", "path": f"landing/{n}/*.csv"}, columns=columns) for n in TABLES]
    files = {f"landing/{n}/{n}_1.csv": "id,name\n1,a\n2,b\n" for n in TABLES}
    kit = make_workspace(sources=sources, files=files, settings=settings(s3.endpoint))
    workspace = Workspace.open(kit.root)
    refs = workspace.select_sources(None)
    assert [r.name for r in refs] == list(TABLES)
    first = ingest_now(workspace, refs)
    assert first.errors == {}
    before = versions_and_rows(workspace)
    assert before == {"depots": (0, 2, 2), "trucks": (0, 2, 2)}

    for name in TABLES:  # a second file each; the store goes away once depots has committed it
        kit.land(f"landing/{name}/{name}_2.csv", "id,name\n3,c\n4,d\n5,e\n")
    halfway = ingest_now(workspace, refs, EndpointGoesAway(workspace, after="uc/depots"))
    assert list(halfway.errors) == ["uc/trucks"] and "uc/depots" in halfway.reports
    assert SECRET_KEY not in halfway.errors["uc/trucks"]

    reopened = Workspace.open(kit.root)  # the endpoint is back
    assert versions_and_rows(reopened) == {"depots": (1, 5, 5), "trucks": (0, 2, 2)}  # new complete, previous

    again = ingest_now(reopened, reopened.select_sources(None))  # the re-run lands what is missing, once
    assert again.errors == {}
    after = versions_and_rows(reopened)
    assert {n: after[n][1:] for n in TABLES} == {"depots": (5, 5), "trucks": (5, 5)}
    assert after["depots"][0] == 1  # depots_2.csv was landed already: nothing appended again
