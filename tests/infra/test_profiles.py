"""Settings profiles (`--profile`, FOUNDATION_PROFILE), `foundation check --profile` without connecting, and
`foundation doctor` against real local parts (Delta folder, DuckDB, Dagster SQLite, MLflow SQLite, a dead API)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.cli.main import app
from foundation.core.settings_profiles import (
    PROFILE_ENV,
    SettingsError,
    apply_profile,
    check_profile,
    deep_merge,
    expand_env,
)
from foundation.core.workspace import Workspace
from foundation.platform.doctor import Redactor, run_doctor

SECRET = "s3cr3t-value-never-printed"
SETTINGS_YAML = """\
lakehouse:
  root: .foundation/lakehouse
api:
  port: 8000
profiles:
  production:
    lakehouse:
      root: s3://acme-lake/foundation
      storage_options:
        AWS_REGION: eu-west-1
        AWS_SECRET_ACCESS_KEY: ${TEST_PROD_SECRET}
    mlflow:
      tracking_uri: http://mlflow:5000
    api:
      host: 0.0.0.0
      port: 9000
"""


@pytest.fixture(autouse=True)
def _no_profile_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    # the CLI's --profile sets FOUNDATION_PROFILE for the process: monkeypatch restores it after each test
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.delenv("TEST_PROD_SECRET", raising=False)


def workspace_with(tmp_path: Path, text: str = SETTINGS_YAML) -> Path:
    root = tmp_path / "ws"
    root.mkdir(parents=True)
    (root / "foundation.yaml").write_text(text, encoding="utf-8")
    return root


def cli(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--workspace", str(root), *args])
    return result.exit_code, result.output


# -- pure parts -------------------------------------------------------------------------------------------------


def test_profile_is_deep_merged_over_the_base() -> None:
    base = {"lakehouse": {"root": "a", "storage_options": {"X": "1"}}, "api": {"port": 1}, "profiles": {}}
    merged = apply_profile({**base, "profiles": {"prod": {"lakehouse": {"storage_options": {"Y": "2"}}}}}, "prod")
    assert merged == {"lakehouse": {"root": "a", "storage_options": {"X": "1", "Y": "2"}}, "api": {"port": 1}}
    assert apply_profile(base, "local") == {"lakehouse": base["lakehouse"], "api": {"port": 1}}
    assert deep_merge({"a": {"b": 1}}, {"a": 2}) == {"a": 2}
    with pytest.raises(SettingsError, match=r"no profile 'staging' \(known: local, prod\)"):
        apply_profile({"profiles": {"prod": {}}}, "staging")


def test_expand_env_names_the_field_and_variable_never_a_value() -> None:
    data = {"lakehouse": {"storage_options": {"KEY": "${A}", "URL": "http://${HOST}:9000"}}}
    assert expand_env(data, {"A": SECRET, "HOST": "minio"}) == {
        "lakehouse": {"storage_options": {"KEY": SECRET, "URL": "http://minio:9000"}}
    }
    with pytest.raises(SettingsError, match=r"lakehouse\.storage_options\.URL: environment variable HOST is not set"):
        expand_env(data, {"A": SECRET})
    assert expand_env(data, {}, strict=False) == data


def test_redactor_masks_values_and_uri_passwords() -> None:
    redact = Redactor({SECRET})
    text = redact(f"failed with key {SECRET} on postgresql://dagster:pw-123@db:5432/dagster")
    assert SECRET not in text and "pw-123" not in text
    assert "postgresql://dagster:***@db:5432/dagster" in text


# -- selecting a profile ----------------------------------------------------------------------------------------


def test_profile_selected_by_argument_or_environment_and_env_overrides_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = workspace_with(tmp_path)
    local = Workspace.open(root)
    assert (local.profile, local.settings.api.port) == ("local", 8000)
    assert local.lakehouse_root == str(root / ".foundation/lakehouse")

    monkeypatch.setenv("TEST_PROD_SECRET", SECRET)
    prod = Workspace.open(root, "production")
    assert prod.lakehouse_root == "s3://acme-lake/foundation"
    assert prod.settings.lakehouse.storage_options == {"AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": SECRET}
    assert (prod.settings.api.host, prod.settings.api.port) == ("0.0.0.0", 9000)
    assert prod.settings.mlflow.tracking_uri == "http://mlflow:5000"

    monkeypatch.setenv(PROFILE_ENV, "production")
    monkeypatch.setenv("FOUNDATION_API__PORT", "9100")  # the environment still wins over the profile
    assert Workspace.open(root).settings.api.port == 9100


def test_unset_secret_stops_opening_with_the_variable_named(tmp_path: Path) -> None:
    root = workspace_with(tmp_path)
    with pytest.raises(SettingsError, match="AWS_SECRET_ACCESS_KEY: environment variable TEST_PROD_SECRET is not set"):
        Workspace.open(root, "production")


# -- foundation check --profile ---------------------------------------------------------------------------------


def test_check_profile_lists_unset_variables_without_connecting(tmp_path: Path) -> None:
    root = workspace_with(tmp_path)
    code, out = cli(root, "check", "--profile", "production", "--json")
    assert code == 0, out  # an unset variable is a warning: CI holds no production secret
    problems = json.loads(out)["errors"]
    unset = [p for p in problems if "TEST_PROD_SECRET" in p["message"]]
    assert unset == [
        {
            "path": str(root / "foundation.yaml"),
            "line": 11,
            "field": "lakehouse.storage_options.AWS_SECRET_ACCESS_KEY",
            "message": "environment variable TEST_PROD_SECRET is not set",
            "hint": "export TEST_PROD_SECRET where profile 'production' runs",
            "severity": "warning",
        }
    ]


def test_check_profile_reports_types_typos_literal_secrets_and_open_api(tmp_path: Path) -> None:
    text = (
        SETTINGS_YAML.replace("      port: 9000", "      port: nine\n      open: true").replace(
            "${TEST_PROD_SECRET}", "AKIA-LITERAL-SECRET"
        )
        + "    mlfow: {tracking_uri: x}\n"
    )
    root = workspace_with(tmp_path, text)
    _, problems = check_profile(root, "production")
    found = {(p.field, p.line, p.severity) for p in problems}
    assert ("lakehouse.storage_options.AWS_SECRET_ACCESS_KEY", 11, "error") in found  # a literal secret
    assert ("api.port", 16, "error") in found  # a type, on the profile's line
    assert ("mlfow", 18, "error") in found  # a typo
    assert all("AKIA-LITERAL-SECRET" not in p.format() for p in problems)

    code, out = cli(root, "check", "--profile", "production")
    assert code == 1
    assert "foundation.yaml:16: api.port: Input should be a valid integer" in " ".join(out.split())

    fixed = SETTINGS_YAML.replace("      port: 9000", "      port: 9000\n      open: true")
    _, problems = check_profile(workspace_with(tmp_path / "2", fixed), "production")
    assert [(p.field, p.severity) for p in problems if p.field == "api.open"] == [("api.open", "error")]


def test_check_profile_warns_when_production_stays_on_embedded_defaults(tmp_path: Path) -> None:
    root = workspace_with(tmp_path, "profiles:\n  production:\n    api: {port: 9000}\n")
    settings, problems = check_profile(root, "production")
    assert settings is not None and settings.api.port == 9000
    assert {(p.field, p.severity) for p in problems} == {
        ("lakehouse.root", "warning"),
        ("mlflow.tracking_uri", "warning"),
    }
    code, out = cli(root, "check", "--profile", "staging")
    assert code == 1 and "no profile 'staging' (known: local, production)" in " ".join(out.split())


# -- foundation doctor ------------------------------------------------------------------------------------------


def test_doctor_probes_the_local_parts_for_real(tmp_path: Path) -> None:
    root = workspace_with(tmp_path)
    probes = {p.part: p for p in run_doctor(root, "local", only=["lakehouse", "duckdb", "mlflow", "api"])}
    assert probes["settings"].status == "ok"
    assert probes["lakehouse"].status == "ok", probes["lakehouse"]
    assert not (root / ".foundation/lakehouse/_doctor").exists()  # the probe table is removed
    assert probes["duckdb"].status == "ok"
    assert probes["mlflow tracking"].status == "ok"
    # locally the API runs only under `foundation serve`: a warning, not a failure
    assert (probes["api"].status, probes["api"].fix.startswith("start it")) == ("warn", True)


@pytest.mark.slow
def test_doctor_reads_a_real_mlflow_store_and_dagster_instance(tmp_path: Path) -> None:
    import mlflow

    root = workspace_with(tmp_path)
    db = root / ".foundation" / "mlflow.db"
    db.parent.mkdir(parents=True)
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").create_experiment("doctor_check")
    code, out = cli(root, "doctor", "--only", "mlflow", "--only", "dagster", "--json")
    assert code == 0, out
    probes = {p["part"]: p for p in json.loads(out)["data"]["probes"]}
    assert "2 experiment(s)" in probes["mlflow tracking"]["detail"]  # Default + ours
    assert probes["mlflow registry"]["status"] == "ok"
    assert probes["dagster"]["status"] == "ok" and "run(s)" in probes["dagster"]["detail"]


def test_doctor_fails_with_the_fix_and_never_prints_the_secret(tmp_path: Path, monkeypatch) -> None:
    root = workspace_with(tmp_path)
    code, out = cli(root, "doctor", "--profile", "production", "--json")
    assert code == 1
    report = json.loads(out)["data"]
    assert [(p["part"], p["status"]) for p in report["probes"]] == [("settings", "fail")]
    assert "TEST_PROD_SECRET" in report["probes"][0]["detail"]
    assert "foundation check --profile production" in report["probes"][0]["fix"]

    # the API of a non-local profile must answer; the secret is set now and must not leak into any message
    monkeypatch.setenv("TEST_PROD_SECRET", SECRET)
    code, out = cli(root, "doctor", "--profile", "production", "--only", "api", "--api-url", "http://127.0.0.1:9")
    assert code == 1
    flat = " ".join(out.split())
    assert "api" in flat and "fail" in flat and "not reachable" in flat
    assert SECRET not in out


def test_check_of_a_remote_profile_never_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's own workspace (its model specs look at published tables) checked against a production
    profile whose object store is a listener counting connections: check must open none."""
    import socket
    import threading

    repo = Path(__file__).resolve().parents[2]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[object] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)
            connection.close()

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("FOUNDATION_LAKE_BUCKET", "lake")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    try:
        code, out = cli(repo, "check", "--profile", "production", "--json")
    finally:
        listener.close()
    assert code == 0, out
    assert json.loads(out)["ok"] is True
    assert accepted == []
