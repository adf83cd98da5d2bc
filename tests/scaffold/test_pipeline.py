"""One CI/CD pipeline and one image build for this repository and every platform `foundation init` writes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from foundation.core.settings_profiles import check_profile
from foundation.scaffold.render import FRAMEWORK_PIPELINE, PLATFORM_INFRA_FILES, pipeline, workspace_files

REPO = Path(__file__).resolve().parents[2]
REGENERATE = (
    'uv run python -c "from pathlib import Path; from foundation.scaffold.render import pipeline; '
    f"Path('{FRAMEWORK_PIPELINE}').write_text(pipeline('data-foundation', framework_repo=True))\""
)


def test_the_repository_pipeline_is_the_template_rendered_for_the_framework() -> None:
    rendered = pipeline("data-foundation", framework_repo=True)
    assert rendered == (REPO / FRAMEWORK_PIPELINE).read_text(encoding="utf-8"), (
        f"{FRAMEWORK_PIPELINE} drifted from foundation/scaffold/templates/github-actions.yaml.j2: edit the template, "
        f"then regenerate with {REGENERATE}"
    )


def test_a_platform_pipeline_has_the_same_validate_and_image_jobs_for_its_own_image() -> None:
    framework = yaml.safe_load(pipeline("data-foundation", framework_repo=True))
    platform = yaml.safe_load(pipeline("acme-lake", framework_repo=False))
    assert platform["env"]["IMAGE"] == "${{ vars.REGISTRY }}/acme-lake"
    assert platform["jobs"]["image"] == framework["jobs"]["image"]
    same = [s for s in framework["jobs"]["validate"]["steps"] if "pytest" not in str(s) and "apt-get" not in str(s)]
    assert [s for s in platform["jobs"]["validate"]["steps"] if "pytest" not in str(s)] == same
    assert "apt-get" not in str(platform)  # the framework's infra tests' engines are not a platform's
    assert set(platform["jobs"]) == {"validate", "image"}  # deploy needs the platform's own infra/helm values


def test_init_writes_the_repositorys_image_build_byte_for_byte() -> None:
    files = workspace_files("acme-lake", "data-foundation>=0.1", None)
    for relative in PLATFORM_INFRA_FILES:
        assert files[relative] == (REPO / relative).read_bytes(), relative


def test_a_wheel_carries_every_file_init_copies() -> None:
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    # schemas/ is there too: tests/test_schemas_shipped.py
    infra = {k: v for k, v in build["force-include"].items() if k != "schemas"}
    assert infra == {f: f"foundation/scaffold/_infra/{f}" for f in PLATFORM_INFRA_FILES}


def test_a_platform_has_the_deploy_group_and_production_profile_the_image_uses(tmp_path: Path) -> None:
    files = workspace_files("acme-lake", "data-foundation>=0.1", None)
    platform_groups = tomllib.loads(str(files["pyproject.toml"]))["dependency-groups"]
    assert (
        platform_groups["deploy"] == tomllib.loads((REPO / "pyproject.toml").read_text())["dependency-groups"]["deploy"]
    )
    (tmp_path / "foundation.yaml").write_text(str(files["foundation.yaml"]))
    settings, problems = check_profile(tmp_path, "production", environ={})
    assert settings is not None and settings.dagster.storage == "postgres"
    assert [p for p in problems if p.severity == "error"] == []
