"""infra/ files are valid and consistent with each other and with the code. Docker, Kubernetes and GitHub Actions
cannot run here: these checks are static (parse, cross-reference); no image build or deploy is claimed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from foundation.core.settings import FoundationSettings
from foundation.core.settings_profiles import check_profile

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
COMPOSE = INFRA / "compose" / "docker-compose.yaml"
COMPOSE_VAR_RE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def env_example(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.mark.parametrize(
    "path",
    [*sorted(INFRA.rglob("*.yaml")), *sorted(INFRA.rglob("*.yml"))],
    ids=lambda p: str(p.relative_to(INFRA)),
)
def test_every_infra_yaml_parses(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents and all(isinstance(d, dict) for d in documents), f"{path} is not a mapping"


def test_compose_services_run_the_platform_image_with_declared_variables() -> None:
    compose = load(COMPOSE)
    services = compose["services"]
    assert {"postgres", "mlflow", "dagster-webserver", "dagster-daemon", "api"} <= set(services)
    foundation_services = [name for name in services if name != "postgres"]
    image = services["api"]["image"]
    assert image.startswith("${FOUNDATION_IMAGE")
    for name in foundation_services:
        assert services[name]["image"] == image, f"{name} must run the platform image"
        assert services[name]["environment"]["FOUNDATION_PROFILE"] == "production"
    # every ${VAR} compose interpolates is declared in .env.example (or defaulted), and every declared one is used
    text = COMPOSE.read_text()
    used = set(COMPOSE_VAR_RE.findall(text))
    declared = set(env_example(INFRA / "compose" / ".env.example"))
    defaulted = {m.group(1) for m in re.finditer(r"\$\{([A-Z_][A-Z0-9_]*):-", text)}
    assert used - declared - defaulted == set()
    assert declared - used == set()
    # no literal secret in the compose file: passwords and keys only as ${VAR}
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|_KEYS?$|SALT", key):
                assert str(value).startswith("${"), f"{name}.{key} holds a literal"
    # Dagster processes load the workspace file the Dagster work ships, with the PostgreSQL variables it names
    for name in ("dagster-webserver", "dagster-daemon"):
        command = " ".join(services[name]["command"])
        assert "/opt/foundation/infra/dagster/workspace.yaml" in command
        assert (INFRA / "dagster" / "workspace.yaml").is_file()
    dagster_env = services["dagster-daemon"]["environment"]
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"} <= set(
        dagster_env
    )
    assert set(services["api"]["environment"]) >= {"FOUNDATION_API_KEYS"}
    # the init script creates the database MLflow's URI names
    assert "/mlflow" in services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert "CREATE DATABASE mlflow" in (INFRA / "compose" / "initdb" / "10-mlflow-database.sql").read_text()


def test_compose_environment_names_real_settings() -> None:
    # FOUNDATION_<SECTION>__<KEY> variables must name settings that exist, else pydantic refuses to start
    compose = load(COMPOSE)
    for service in compose["services"].values():
        for key in service.get("environment") or {}:
            if key.startswith("FOUNDATION_") and "__" in key:
                section, field = key.removeprefix("FOUNDATION_").lower().split("__", 1)
                model = FoundationSettings.model_fields[section].annotation
                assert field in model.model_fields, key  # type: ignore[union-attr]


def test_dagster_yaml_has_postgres_storage_and_a_queued_coordinator() -> None:
    config = load(INFRA / "dagster" / "dagster.yaml")
    assert "postgres" in config["storage"]
    postgres = config["storage"]["postgres"]["postgres_db"]
    assert all(isinstance(v, dict) and "env" in v for k, v in postgres.items() if k != "scheme")  # no literal
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_helm_values_deploy_our_code_with_the_k8s_run_launcher() -> None:
    values = load(INFRA / "helm" / "values.yaml")
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert values["dagster-user-deployments"]["enabled"] is True
    args = deployment["dagsterApiGrpcArgs"]
    module = args[args.index("--module-name") + 1]
    assert (REPO / (module.replace(".", "/") + ".py")).is_file(), module
    assert {"name": "FOUNDATION_PROFILE", "value": "production"} in deployment["env"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["postgresql"]["enabled"] is False and "postgresqlPassword" not in values["postgresql"]
    # the chart version in the docs and CI is the dagster package's
    lock = (REPO / "uv.lock").read_text()
    version = re.search(r'name = "dagster"\nversion = "([^"]+)"', lock).group(1)  # type: ignore[union-attr]
    assert f"--version {version}" in (INFRA / "ci" / "github-actions.yaml").read_text()
    services = list(yaml.safe_load_all((INFRA / "helm" / "services.yaml").read_text()))
    assert {d["kind"] for d in services} == {"Deployment", "Service", "HorizontalPodAutoscaler"}


def test_compose_and_helm_run_the_unattended_platform() -> None:
    """The deployed daemons load the same code location as `foundation daemon`, so they run the same schedules and
    automation and new-files sensors."""
    from foundation.cli.daemon_command import CODE_LOCATION

    module = CODE_LOCATION[CODE_LOCATION.index("-m") + 1]
    compose = load(INFRA / "compose" / "docker-compose.yaml")["services"]
    command = compose["dagster-daemon"]["command"]
    assert command[:2] == ["dagster-daemon", "run"]
    workspace = load(INFRA / "dagster" / "workspace.yaml")
    assert [entry["python_module"]["module_name"] for entry in workspace["load_from"]] == [module]
    assert command[command.index("--workspace") + 1].endswith("infra/dagster/workspace.yaml")
    values = load(INFRA / "helm" / "values.yaml")
    assert values["dagsterDaemon"]["enabled"] is True
    args = values["dagster-user-deployments"]["deployments"][0]["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == module


def test_dockerfile_builds_from_the_lock_and_sets_the_production_profile() -> None:
    text = (INFRA / "docker" / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev --group deploy" in text
    assert "FOUNDATION_PROFILE=production" in text
    assert "COPY --chown=foundation:foundation infra/dagster/dagster.yaml" in text
    assert "USER foundation" in text
    groups = load_pyproject()["dependency-groups"]
    assert any(d.startswith("dagster-k8s") for d in groups["deploy"])
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".foundation", ".venv", ".git", "landing", "infra/compose/.env"} <= set(ignored)


def load_pyproject() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_ci_workflow_runs_every_stage() -> None:
    workflow = load(INFRA / "ci" / "github-actions.yaml")
    all_steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    steps = " ".join(str(step.get("run", "")) + str(step.get("with", "")) for step in all_steps)
    for stage in ("ruff check", "foundation check --profile production", "pytest", "prepare_project", "Dockerfile"):
        assert stage in steps, stage
    assert workflow["jobs"]["image"]["needs"] == "validate"
    assert "foundation doctor" in steps


def test_the_repository_production_profile_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOUNDATION_LAKE_BUCKET", raising=False)
    settings, problems = check_profile(REPO, "production", environ={})
    assert settings is not None
    assert [p for p in problems if p.severity == "error"] == []
    assert {p.field for p in problems} == {"lakehouse.root", "lakehouse.storage_options.AWS_REGION"}  # unset vars
