"""The production profile end to end: `foundation --profile production run` and `serve` on object storage and
PostgreSQL, with no code change, only the profile in foundation.yaml.

- Lakehouse (bronze, gold, KPI catalogue, ML tables) on a real S3-compatible server (moto's server mode,
  tests/infra/s3_server.py), its credentials only in the profile's `lakehouse.storage_options` (as `${VAR}`s of
  variables not named AWS_*, so no library can find them by itself in the environment).
- Dagster's runs on the tests' throwaway PostgreSQL (tests/pg_server.py), `dagster.storage: postgres`.
- MLflow: the shipped tracking server (infra/mlflow/mlflow-server.sh) on that PostgreSQL, artifacts on S3.
- dbt on DuckDB reads bronze from S3 (each snapshot copied into the warehouse: DuckDB's S3 reader cannot be installed
  here); training reads its feature table from S3; the API loads its champion from that MLflow.

One use case (machine_failure: its source is the CSV the repository ships); the fleet use case needs the workshop
API and would double the time. dbt on Spark is not exercised here: Spark's S3 connector (hadoop-aws) is not part of
pyspark and cannot be downloaded here (docs/operations.md).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pg_server import PostgresServer, free_port

from tests.infra.conftest import running_mlflow_server_on_s3, stop_process_group
from tests.infra.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, running_s3

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FOUNDATION = [sys.executable, "-m", "foundation.cli.main"]
BUCKET = "prod-lake"
USECASE = "machine_failure"
PRODUCTION = {
    "lakehouse": {
        "root": f"s3://{BUCKET}/foundation",
        "storage_options": {
            "AWS_ACCESS_KEY_ID": "${LAKE_ACCESS_KEY}",
            "AWS_SECRET_ACCESS_KEY": "${LAKE_SECRET_KEY}",
            "AWS_ENDPOINT_URL": "${LAKE_ENDPOINT}",
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        },
    },
    "dagster": {"storage": "postgres"},
    "mlflow": {"tracking_uri": "${MLFLOW_URL}"},
}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def mlflow_url(
    postgres_server: PostgresServer, s3: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The shipped MLflow launcher on its own PostgreSQL database, artifacts proxied to S3."""
    database = f"mlflow_{secrets.token_hex(4)}"
    postgres_server.create_database(database)
    folder = tmp_path_factory.mktemp("mlflow")
    with running_mlflow_server_on_s3(
        postgres_server, database, s3.environ(), f"s3://{BUCKET}/mlflow-artifacts", folder
    ) as url:
        yield url


def _without_aws(environ: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith(("AWS_", "MLFLOW_", "DAGSTER_", "FOUNDATION_"))}


def _workspace(root: Path) -> Path:
    """The repository's use cases and dbt project, with the production profile (only machine_failure is run)."""
    root.mkdir(parents=True)
    settings = yaml.safe_load((REPO / "foundation.yaml").read_text(encoding="utf-8"))
    settings["profiles"] = {"production": PRODUCTION}
    (root / "foundation.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    shutil.copytree(REPO / "usecases", root / "usecases")  # machine_failure's KPIs extend the fleet's
    ignore = shutil.ignore_patterns("_generated", "target", "logs")
    shutil.copytree(REPO / "dbt_project", root / "dbt_project", ignore=ignore)
    return root


@pytest.fixture(scope="module")
def production_env(postgres_server: PostgresServer, s3: S3Server, mlflow_url: str) -> dict[str, str]:
    """What an operator exports: the profile's secrets (never AWS_*), the Dagster database, the profile's name."""
    database = f"dagster_{secrets.token_hex(4)}"
    postgres_server.create_database(database)
    return {
        **_without_aws(os.environ),
        "FOUNDATION_PROFILE": "production",
        "LAKE_ACCESS_KEY": ACCESS_KEY,
        "LAKE_SECRET_KEY": SECRET_KEY,
        "LAKE_ENDPOINT": s3.endpoint,
        "MLFLOW_URL": mlflow_url,
        "DAGSTER_PG_HOST": postgres_server.host,
        "DAGSTER_PG_PORT": str(postgres_server.port),
        "DAGSTER_PG_DB": database,
        "DAGSTER_PG_USER": postgres_server.user,
        "DAGSTER_PG_PASSWORD": postgres_server.password,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _foundation(root: Path, env: dict[str, str], *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FOUNDATION, "--workspace", str(root), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, production_env: dict[str, str]) -> tuple[Path, dict]:
    root = _workspace(tmp_path_factory.mktemp("production") / "ws")
    result = _foundation(root, production_env, "run", USECASE, "--json")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return root, json.loads(result.stdout)


def test_foundation_run_puts_every_table_on_s3_and_every_run_in_postgres(
    ran: tuple[Path, dict], s3: S3Server, postgres_server: PostgresServer, production_env: dict[str, str]
) -> None:
    root, _ = ran
    keys = s3.keys(BUCKET, "foundation/")
    for table in (
        f"bronze/{USECASE}/ai4i_readings",
        f"gold/{USECASE}/fct_product_runs",
        f"gold/{USECASE}/kpi_failure_rate_by_machine_type",
        "ml/_registry/promotions",
    ):
        assert any(k.startswith(f"foundation/{table}/_delta_log/") for k in keys), table
    assert "foundation/gold/_catalog/kpis.json" in keys  # the KPI catalogue
    assert s3.keys(BUCKET, "mlflow-artifacts/"), "MLflow's artifacts are on S3"
    assert not (root / ".foundation" / "lakehouse").exists() and not (root / "s3:").exists()
    runs = postgres_server.psql("SELECT status FROM runs", database=production_env["DAGSTER_PG_DB"])
    assert "SUCCESS" in runs.split()
    kpis = _foundation(root, production_env, "kpi", "list", "--json")
    assert kpis.returncode == 0, kpis.stderr[-3000:]
    assert "kpi_failure_rate_by_machine_type" in kpis.stdout


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"foundation serve exited with {process.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"foundation serve was not ready within {timeout:.0f} s")


def test_foundation_serve_loads_the_champion_from_the_tracking_server(
    ran: tuple[Path, dict], production_env: dict[str, str]
) -> None:
    root, _ = ran
    port = free_port()
    env = {**production_env, "FOUNDATION_API__OPEN": "true"}
    command = [*FOUNDATION, "--workspace", str(root), "serve", "--port", str(port)]
    with (root / "serve.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process)
        with urllib.request.urlopen(f"{url}/v1/models", timeout=30) as response:
            models = json.loads(response.read())
    finally:
        stop_process_group(process)
    assert [m["name"] for m in models] == [f"{USECASE}__machine_failure"], models
