"""Pure rendering of the scaffold templates (package data under `templates/`).

Templates use `[[ ]]` / `[% %]` delimiters, so dbt's own `{{ }}` Jinja passes through untouched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from foundation.core.json_schemas import schema_files
from foundation.core.workspace import KPIS_DIR, ML_DIR, SOURCES_DIR, USECASE_FILE, USECASES_DIR
from foundation.specs.fields import EMAIL_RE, IDENTIFIER_RE
from foundation.specs.usecase import USECASE_TYPES

TEMPLATES = resources.files("foundation.scaffold") / "templates"
RENDERED_SUFFIX = ".j2"
EXAMPLE_USECASE = "equipment_failure"
CI_PATH = ".github/workflows/ci.yml"
PIPELINE_TEMPLATE = "github-actions.yaml.j2"
# This repository's pipeline is this template rendered with framework_repo=True (tests/scaffold keep them equal).
FRAMEWORK_PIPELINE = "infra/ci/github-actions.yaml"
FRAMEWORK_IMAGE = "data-foundation"
# Files of the framework repository a new platform gets as they are (the image build and the Dagster instance it
# copies). The checkout's files are the source; a wheel carries the same files under foundation/scaffold/_infra
# (pyproject.toml: [tool.hatch.build.targets.wheel.force-include]), so there is no second copy to drift.
PLATFORM_INFRA_FILES = (
    "infra/docker/Dockerfile",
    ".dockerignore",
    "infra/dagster/dagster.yaml",
    "infra/dagster/workspace.yaml",
)
PACKAGED_INFRA = resources.files("foundation.scaffold") / "_infra"
CHECKOUT = Path(__file__).resolve().parents[2]
# Template names that cannot be package data as they are (dotfiles) -> their name in the workspace.
RENAMED = {"gitignore": ".gitignore"}
PREDICTION_TYPES = frozenset({"prediction"})
TYPE_ALIASES = {
    "analytics_prediction": "prediction",
    "analytics & prediction": "prediction",
    "visualization": "visualisation",
}

_env = Environment(
    variable_start_string="[[",
    variable_end_string="]]",
    block_start_string="[%",
    block_end_string="%]",
    comment_start_string="[#",
    comment_end_string="#]",
    keep_trailing_newline=True,
    trim_blocks=True,
    undefined=StrictUndefined,
    autoescape=False,  # YAML, SQL and TOML, not HTML
)
_env.filters["yaml_value"] = lambda value: json.dumps(value, ensure_ascii=False)  # JSON scalars are valid YAML


class ScaffoldError(ValueError):
    """Bad answers for a scaffold (a name that is not an identifier, an unknown type...): the message says the fix."""


@dataclass(frozen=True)
class UsecaseAnswers:
    name: str
    type: str
    owner: str
    question: str
    sponsor: str | None = None
    users: list[str] = field(default_factory=list)
    title: str | None = None
    source: str = "records"

    @property
    def display_title(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()


def check_identifier(value: str, what: str) -> str:
    if not IDENTIFIER_RE.match(value) or "__" in value:
        suggestion = re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "_", value.strip().lower())).strip("_")
        if suggestion and not suggestion[0].isalpha():
            suggestion = f"uc_{suggestion}"
        hint = f" (e.g. {suggestion!r})" if suggestion and IDENTIFIER_RE.match(suggestion) else ""
        raise ScaffoldError(
            f"{what} {value!r} is not an identifier: use lower_snake_case, a letter first, then letters, digits or "
            f"single underscores, at most 63 characters{hint}; it names a folder, a Dagster group and tables"
        )
    return value


def normalise_type(value: str) -> str:
    kind = TYPE_ALIASES.get(value.strip().lower(), value.strip().lower())
    if kind not in USECASE_TYPES:
        raise ScaffoldError(f"unknown use-case type {value!r}: choose one of {', '.join(USECASE_TYPES)}")
    return kind


def check_email(value: str, what: str) -> str:
    if not EMAIL_RE.match(value):
        raise ScaffoldError(f"{what} {value!r} is not an e-mail address (a person or team mailbox)")
    return value


def validate_answers(answers: UsecaseAnswers) -> UsecaseAnswers:
    """The answers, checked and normalised; raises ScaffoldError naming the bad one and the fix."""
    check_identifier(answers.name, "use-case name")
    check_identifier(answers.source, "source name")
    check_email(answers.owner, "owner")
    if answers.sponsor:
        check_email(answers.sponsor, "sponsor")
    if len(answers.question.strip()) < 10:
        raise ScaffoldError("the business question must be a sentence (at least 10 characters), e.g. 'Which ...?'")
    return UsecaseAnswers(
        name=answers.name,
        type=normalise_type(answers.type),
        owner=answers.owner,
        question=answers.question.strip(),
        sponsor=answers.sponsor or None,
        users=[u.strip() for u in answers.users if u.strip()],
        title=answers.title,
        source=answers.source,
    )


def _render(template: str, context: dict[str, object]) -> str:
    return _env.from_string(template).render(**context)


def usecase_files(answers: UsecaseAnswers) -> dict[str, str]:
    """{path relative to the workspace: text} of a use-case skeleton; a model spec only for prediction types."""
    a = validate_answers(answers)
    folder = TEMPLATES / "usecase"
    context = {
        "name": a.name,
        "type": a.type,
        "owner": a.owner,
        "sponsor": a.sponsor,
        "users": a.users,
        "question": a.question,
        "title": a.display_title,
        "source": a.source,
    }
    layout = {
        "usecase.yaml.j2": f"{USECASES_DIR}/{a.name}/{USECASE_FILE}",
        "source.yaml.j2": f"{USECASES_DIR}/{a.name}/{SOURCES_DIR}/{a.source}.yaml",
        "kpi.yaml.j2": f"{USECASES_DIR}/{a.name}/{KPIS_DIR}/{a.name}_rows.yaml",
        "stg.sql.j2": f"dbt_project/models/{a.name}/staging/stg_{a.name}__{a.source}.sql",
        "staging.yml.j2": f"dbt_project/models/{a.name}/staging/_staging.yml",
        "fct.sql.j2": f"dbt_project/models/{a.name}/marts/fct_{a.name}.sql",
        "marts.yml.j2": f"dbt_project/models/{a.name}/marts/_marts.yml",
    }
    if a.type in PREDICTION_TYPES:
        layout["model.yaml.j2"] = f"{USECASES_DIR}/{a.name}/{ML_DIR}/prediction.yaml"
    return {target: _render(folder.joinpath(t).read_text(encoding="utf-8"), context) for t, target in layout.items()}


def _walk(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found = []
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        if item.name == "__pycache__":
            continue
        if item.is_dir():
            found += _walk(item, f"{prefix}{item.name}/")
        else:
            found.append((f"{prefix}{item.name}", item))
    return found


def workspace_files(project_name: str, requirement: str, framework_path: str | None) -> dict[str, str | bytes]:
    """{path: content} of a new platform workspace: settings, example use case, dbt project, Dagster entry, CI.

    The framework's dbt macros are not among them: the dbt project's macro-paths reads them from the installed
    framework (foundation.engine.dbt.framework_macros), so a platform never holds a copy that drifts.
    """
    context = {"project_name": project_name, "requirement": requirement, "framework_path": framework_path}
    files: dict[str, str | bytes] = {}
    for relative, item in _walk(TEMPLATES / "workspace"):
        if relative.endswith(RENDERED_SUFFIX):
            target = relative[: -len(RENDERED_SUFFIX)]
            target = "/".join([*target.split("/")[:-1], RENAMED.get(target.split("/")[-1], target.split("/")[-1])])
            files[target] = _render(item.read_text(encoding="utf-8"), context)
        else:
            files[relative] = item.read_bytes()
    files[CI_PATH] = pipeline(project_name, framework_repo=False)
    for relative in PLATFORM_INFRA_FILES:
        files[relative] = framework_infra_file(relative)
    files.update(schema_files())  # what the YAML files' `$schema` comments point at, from the installed models
    return files


def pipeline(project_name: str, framework_repo: bool) -> str:
    """The CI/CD pipeline (GitHub Actions): a platform's, or this framework repository's infra/ci/github-actions.yaml.

    One template for both: the framework's own run adds the engines its infra tests start and the Helm deploy jobs.
    """
    image = FRAMEWORK_IMAGE if framework_repo else project_name
    context = {"project_name": project_name, "image_name": image, "framework_repo": framework_repo}
    return _render((TEMPLATES / PIPELINE_TEMPLATE).read_text(encoding="utf-8"), context)


def framework_infra_file(relative: str) -> bytes:
    """A file of PLATFORM_INFRA_FILES: from the framework checkout when run from one, else from the installed wheel."""
    in_checkout = CHECKOUT / relative
    if (CHECKOUT / FRAMEWORK_PIPELINE).is_file() and in_checkout.is_file():
        return in_checkout.read_bytes()
    packaged = PACKAGED_INFRA.joinpath(*relative.split("/"))
    if not packaged.is_file():
        raise ScaffoldError(
            f"{relative} is missing from the installed data-foundation package: reinstall it (a wheel built with "
            "hatchling includes it, see pyproject.toml's force-include)"
        )
    return packaged.read_bytes()


def project_name_of(folder_name: str) -> str:
    """A distribution name for the workspace's pyproject from its folder name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder_name).strip("-._").lower()
    return name or "data-platform"


# `foundation sources new` / `foundation kpi new`: one commented YAML of each kind, as `dlt init` writes a source.
SOURCE_TYPES = ("csv", "parquet", "json", "ndjson", "delta", "rest_api", "sql", "html_table")


def source_file(usecase: str, name: str, type_: str, owner: str) -> dict[str, str]:
    """{path: text} of a new source YAML of extract `type_`, with its `$schema` line and TODOs; passes `check`."""
    check_identifier(name, "source name")
    if type_ not in SOURCE_TYPES:
        raise ScaffoldError(f"unknown source type {type_!r}: choose one of {', '.join(SOURCE_TYPES)}")
    context = {"usecase": usecase, "name": name, "type": type_, "owner": owner, "env": name.upper()}
    template = (TEMPLATES / "new" / "source.yaml.j2").read_text(encoding="utf-8")
    return {f"{USECASES_DIR}/{usecase}/{SOURCES_DIR}/{name}.yaml": _render(template, context)}


def kpi_file(usecase: str, name: str, owner: str, model: str, time: str) -> dict[str, str]:
    """{path: text} of a new KPI YAML on `model` (a dbt model) and its date column `time`; passes `check`."""
    check_identifier(name, "KPI name")
    context = {"usecase": usecase, "name": name, "owner": owner, "model": model, "time": time}
    context["label"] = name.replace("_", " ").capitalize()
    template = (TEMPLATES / "new" / "kpi.yaml.j2").read_text(encoding="utf-8")
    return {f"{USECASES_DIR}/{usecase}/{KPIS_DIR}/{name}.yaml": _render(template, context)}
