"""The lakehouse on S3: a real S3-compatible server (moto's server mode, started by the test on a loopback port),
credentials from the environment, a full ingest through the CLI (Dagster in process), a re-run without duplicates,
and a read back through the catalog (DuckDB over pyarrow's S3 filesystem)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from s3_server import SECRET_KEY, S3Server, running_s3
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.catalog import bronze_tables, register_bronze
from foundation.engine.lakehouse.object_store import (
    azure_filesystem_kwargs,
    filesystem_path,
    is_remote,
    s3_filesystem_kwargs,
)

BUCKET = "lake"
ROOT = f"s3://{BUCKET}/foundation"
S3_SETTINGS = {
    "lakehouse": {
        "root": ROOT,
        # secrets only as references; the region and endpoint are plain settings
        "storage_options": {
            "AWS_ACCESS_KEY_ID": "${AWS_ACCESS_KEY_ID}",
            "AWS_SECRET_ACCESS_KEY": "${AWS_SECRET_ACCESS_KEY}",
            "AWS_ENDPOINT_URL": "${AWS_ENDPOINT_URL}",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        },
    }
}
TRUCKS_CSV = "truck_id,truck_type,km\nT1,tractor,1200\nT2,van,800\nT3,rigid,not-a-number\nT4,van,50\n"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for key, value in s3.environ().items():
        monkeypatch.setenv(key, value)
    return s3


def trucks_spec(spec) -> dict:
    return spec(
        "trucks",
        {"type": "csv", "path": "landing/trucks/*.csv"},
        load={"mode": "merge", "primary_key": ["truck_id"]},
        columns=[
            {"name": "truck_id", "type": "varchar", "required": True},
            {"name": "truck_type", "type": "varchar"},
            {"name": "km", "type": "double"},
        ],
        on_invalid_rows="quarantine",
    )


def cli(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--workspace", str(root), *args])
    return result.exit_code, result.output


@pytest.mark.slow
def test_ingest_rerun_and_read_back_on_s3(make_workspace, spec, s3_env: S3Server) -> None:
    kit = make_workspace(
        sources=[trucks_spec(spec)], files={"landing/trucks/trucks_1.csv": TRUCKS_CSV}, settings=S3_SETTINGS
    )
    code, out = cli(kit.root, "ingest", "--json")
    assert code == 0, out
    report = json.loads(out)["data"]["reports"][0]
    assert (report["rows_read"], report["rows_landed"], report["rows_quarantined"]) == (4, 3, 1)

    # Everything landed in the bucket, nothing in a local lakehouse folder.
    keys = s3_env.keys(BUCKET, "foundation/bronze/uc/trucks/")
    assert any(k.endswith("_delta_log/00000000000000000000.json") for k in keys)
    assert any(k.endswith(".parquet") for k in keys)
    assert s3_env.keys(BUCKET, "foundation/bronze/uc/trucks__quarantine/_delta_log/")
    assert not s3_env.keys(BUCKET, "foundation/bronze/uc/trucks__quarantine_pending/")  # written, appended, removed
    assert not (kit.root / ".foundation" / "lakehouse").exists()

    # A re-run of the same file upserts on the key (no duplicates); a new file merges over it.
    code, out = cli(kit.root, "ingest", "--json")
    assert code == 0, out
    assert kit.query("select count(*) as n, count(distinct truck_id) as k from bronze.uc__trucks") == [{"n": 3, "k": 3}]
    kit.land("landing/trucks/trucks_2.csv", "truck_id,truck_type,km\nT1,tractor,1300\nT5,rigid,10\n")
    code, out = cli(kit.root, "ingest", "--json")
    assert code == 0, out

    # Read back through the catalog: `foundation sql` and register_bronze with the workspace's storage options.
    code, out = cli(kit.root, "sql", "select truck_id, km from bronze.uc__trucks order by truck_id", "--json")
    assert code == 0, out
    assert [(r["truck_id"], r["km"]) for r in json.loads(out)["data"]] == [
        ("T1", 1300.0),
        ("T2", 800.0),
        ("T4", 50.0),
        ("T5", 10.0),
    ]
    workspace = Workspace.open(kit.root)
    assert set(bronze_tables(workspace.lakehouse_root, workspace.settings.lakehouse.storage_options)) == {
        ("uc", "trucks"),
        ("uc", "trucks__quarantine"),
    }
    con = duckdb.connect()
    register_bronze(con, workspace.lakehouse_root, workspace.settings.lakehouse.storage_options)
    counts = con.execute(
        "select count(*), count(distinct truck_id) from bronze.uc__trucks union all "
        "select count(*), count(distinct _load_id) from bronze.uc__trucks__quarantine"
    ).fetchall()
    assert counts == [(4, 4), (3, 3)]  # each of the three loads re-read trucks_1.csv and quarantined its bad row
    # the secret reached deltalake and pyarrow, and no output
    assert SECRET_KEY not in out


def test_unset_credential_is_named_not_shown(make_workspace, s3: S3Server, monkeypatch) -> None:
    kit = make_workspace(settings=S3_SETTINGS)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(ValueError, match=r"lakehouse\.storage_options\.AWS_SECRET_ACCESS_KEY.*AWS_SECRET_ACCESS_KEY"):
        Workspace.open(kit.root)


def test_storage_options_map_onto_pyarrow_filesystems() -> None:
    s3 = s3_filesystem_kwargs(
        {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}
    )
    assert s3 == {"access_key": "k", "secret_key": "s", "endpoint_override": "127.0.0.1:9000", "scheme": "http"}
    assert s3_filesystem_kwargs({"AWS_REGION": "eu-west-1"}) == {"region": "eu-west-1"}  # credentials: AWS chain
    azure = azure_filesystem_kwargs("abfss://lake@acme.dfs.core.windows.net/x", {"AZURE_STORAGE_ACCOUNT_KEY": "k"})
    assert azure == {"account_name": "acme", "account_key": "k"}
    with pytest.raises(ValueError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        azure_filesystem_kwargs("az://lake/x", {})
    assert filesystem_path("abfss://lake@acme.dfs.core.windows.net/a/b/") == "lake/a/b"
    assert filesystem_path("s3://bucket/prefix/t") == "bucket/prefix/t"
    assert is_remote("s3://b/p") and is_remote("gs://b/p") and not is_remote("/data/lake")
    assert not is_remote("file:///data/lake")


def test_doctor_probes_the_s3_lakehouse_and_names_the_fix(make_workspace, s3_env: S3Server, monkeypatch) -> None:
    monkeypatch.delenv("FOUNDATION_PROFILE", raising=False)  # --profile sets it for the process; restored after
    kit = make_workspace(settings={"profiles": {"production": S3_SETTINGS}})
    code, out = cli(kit.root, "doctor", "--profile", "production", "--only", "lakehouse", "--json")
    assert code == 0, out
    probes = {p["part"]: p for p in json.loads(out)["data"]["probes"]}
    assert probes["lakehouse"]["status"] == "ok" and probes["lakehouse"]["detail"].startswith(ROOT)
    assert not s3_env.keys(BUCKET, "foundation/_doctor/probe-")  # the probe table was removed

    # a bucket that does not exist: a failure with the fix, quickly (no minutes of client retries), no secret shown
    missing = {"profiles": {"production": {"lakehouse": {**S3_SETTINGS["lakehouse"], "root": "s3://no-such-bucket/x"}}}}
    kit.write_settings(missing)
    code, out = cli(kit.root, "doctor", "--profile", "production", "--only", "lakehouse", "--json")
    assert code == 1, out
    lakehouse = next(p for p in json.loads(out)["data"]["probes"] if p["part"] == "lakehouse")
    assert lakehouse["status"] == "fail" and "s3://no-such-bucket/x" in lakehouse["detail"]
    assert "credentials" in lakehouse["fix"]
    assert SECRET_KEY not in out
