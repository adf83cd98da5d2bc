"""Settings profiles: one `foundation.yaml`, several deployments (`local`, `production`, ...).

```yaml
lakehouse: {root: .foundation/lakehouse}      # the base: today's embedded defaults (= the `local` profile)
profiles:
  production:                                 # deep-merged over the base when selected
    lakehouse:
      root: s3://acme-lake/foundation
      storage_options: {AWS_REGION: eu-west-1, AWS_SECRET_ACCESS_KEY: "${AWS_SECRET_ACCESS_KEY}"}
```

A profile is selected by `--profile NAME` or `FOUNDATION_PROFILE`; `FOUNDATION_<SECTION>__<KEY>` variables still win
over it. Any string value may reference `${VAR}`; references are expanded when a workspace opens (an unset one is an
error that names the variable and the field, never a value). `check_profile` validates a profile without connecting
to anything and without expanding a single secret.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from foundation.core.settings import SETTINGS_FILE, FoundationSettings
from foundation.specs.errors import SpecError
from foundation.specs.secrets import ENV_REF_RE, literal_secrets
from foundation.specs.yaml_source import YamlDocument, load_yaml

PROFILE_ENV = "FOUNDATION_PROFILE"
PROFILES_KEY = "profiles"
LOCAL = "local"  # always exists: the base settings with no overlay
OBJECT_STORE_SCHEMES = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "abfss://", "azure://")
TRACKING_SCHEMES = ("sqlite:///", "http://", "https://", "postgresql://", "postgresql+psycopg2://", "databricks")

Loc = tuple[str | int, ...]
# Sections whose `${VAR}`s are resolved by their code when used (an alert channel's password), not when a workspace
# opens: an SMTP password unset on a developer's machine must not stop every command.
LATE_RESOLVED = ("notifications",)


def expand_settings(data: Mapping[str, Any], environ: Mapping[str, str], strict: bool = True) -> dict[str, Any]:
    """Pure: `expand_env` over every section but the LATE_RESOLVED ones, which stay as written."""
    expanded = expand_env({k: v for k, v in data.items() if k not in LATE_RESOLVED}, environ, strict)
    return {**expanded, **{k: copy.deepcopy(v) for k, v in data.items() if k in LATE_RESOLVED}}


class SettingsError(ValueError):
    """foundation.yaml cannot give settings for the selected profile (names the file, the field and the fix)."""


def selected_profile(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return explicit or env.get(PROFILE_ENV) or LOCAL


def deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: `overlay` over `base`; mappings merge key by key, anything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def declared_profiles(data: Mapping[str, Any]) -> list[str]:
    profiles = data.get(PROFILES_KEY) or {}
    names = list(profiles) if isinstance(profiles, Mapping) else []
    return [LOCAL, *[n for n in names if n != LOCAL]]


def apply_profile(data: Mapping[str, Any], profile: str, path: Path | str = SETTINGS_FILE) -> dict[str, Any]:
    """Pure: the settings data of `profile` (the base with the profile's overlay), without the `profiles` key."""
    profiles = data.get(PROFILES_KEY) or {}
    if not isinstance(profiles, Mapping) or not all(isinstance(v, Mapping | None) for v in profiles.values()):
        raise SettingsError(
            f"{path}: profiles: must map profile names to settings sections (profiles: {{production: "
            "{lakehouse: {...}}}})"
        )
    base = {k: v for k, v in data.items() if k != PROFILES_KEY}
    if profile not in profiles:
        if profile == LOCAL:
            return copy.deepcopy(base)
        known = ", ".join(declared_profiles(data))
        raise SettingsError(
            f"{path}: no profile {profile!r} (known: {known}); add it under profiles:, or fix --profile / {PROFILE_ENV}"
        )
    return deep_merge(base, profiles[profile] or {})


def env_references(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """(location, variable) of every `${VAR}` in a parsed settings value."""
    if isinstance(data, str):
        for name in ENV_REF_RE.findall(data):
            yield loc, name
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from env_references(value, (*loc, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from env_references(value, (*loc, i))


def expand_env(data: Any, environ: Mapping[str, str], strict: bool = True, loc: Loc = ()) -> Any:
    """Pure: `data` with every `${VAR}` replaced from `environ`.

    strict: an unset variable raises SettingsError (naming it and the field); otherwise it is left as written."""
    if isinstance(data, str):

        def substitute(match: Any) -> str:
            name = match.group(1)
            if name in environ:
                return environ[name]
            if strict:
                field = ".".join(str(p) for p in loc)
                raise SettingsError(
                    f"{SETTINGS_FILE}: {field}: environment variable {name} is not set; export it (from your secret "
                    "store) before running, or run `foundation check --profile P` to list every unset variable"
                )
            return match.group(0)

        return ENV_REF_RE.sub(substitute, data)
    if isinstance(data, Mapping):
        return {k: expand_env(v, environ, strict, (*loc, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [expand_env(v, environ, strict, (*loc, i)) for i, v in enumerate(data)]
    return data


def read_document(workspace: Path) -> tuple[YamlDocument | None, list[SpecError]]:
    path = workspace / SETTINGS_FILE
    if not path.exists():
        return None, []
    return load_yaml(path)


def settings_data(workspace: Path, profile: str | None = None, environ: Mapping[str, str] | None = None) -> dict:
    """The init data of FoundationSettings for `profile` (default: --profile / FOUNDATION_PROFILE / local),
    `${VAR}` expanded. Raises SettingsError on a bad file, an unknown profile or an unset variable."""
    env = os.environ if environ is None else environ
    doc, errors = read_document(workspace)
    if errors:
        raise SettingsError("\n".join(e.format() for e in errors))
    data = doc.data if doc is not None else {}
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SettingsError(f"{workspace / SETTINGS_FILE}: the settings file must be a mapping of sections")
    merged = apply_profile(data, selected_profile(profile, env), workspace / SETTINGS_FILE)
    return expand_settings(merged, env, strict=True)


def load_settings(workspace: Path, profile: str | None = None) -> FoundationSettings:
    """Settings of the workspace: defaults < foundation.yaml < its profile (`--profile`, FOUNDATION_PROFILE)
    < FOUNDATION_* environment variables. `${VAR}` references are expanded."""
    return FoundationSettings(**settings_data(workspace, profile))


def _profile_line(doc: YamlDocument | None, profile: str, loc: Loc) -> int | None:
    """Line of a field: in the profile's overlay when it sets it, else in the base settings."""
    if doc is None:
        return None
    profiles = doc.data.get(PROFILES_KEY) if isinstance(doc.data, Mapping) else None
    node: Any = (profiles or {}).get(profile) if isinstance(profiles, Mapping) else None
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return doc.line_of(loc)
        node = node[part]
    return doc.line_of((PROFILES_KEY, profile, *loc))


def _semantic_errors(settings: FoundationSettings, profile: str, path: Path, line: Any) -> list[SpecError]:
    """What types cannot catch: an unknown URI scheme; in a deployment, an open API or embedded defaults."""
    errors = _scheme_errors(settings, path, line)
    return errors if profile == LOCAL else errors + _deployment_errors(settings, profile, path, line)


def _scheme_errors(settings: FoundationSettings, path: Path, line: Any) -> list[SpecError]:
    errors: list[SpecError] = []
    root = settings.lakehouse.root
    remote = any(root.startswith(s) for s in OBJECT_STORE_SCHEMES)
    if "://" in root and not remote and not root.startswith("file://"):
        errors.append(
            SpecError(
                path,
                line(("lakehouse", "root")),
                "lakehouse.root",
                f"unknown storage scheme in {root!r}",
                f"use a folder or one of {', '.join(OBJECT_STORE_SCHEMES)}",
            )
        )
    uri = settings.mlflow.tracking_uri
    if not uri.startswith(TRACKING_SCHEMES):
        errors.append(
            SpecError(
                path,
                line(("mlflow", "tracking_uri")),
                "mlflow.tracking_uri",
                f"unknown tracking URI {uri!r}",
                "use sqlite:///path/mlflow.db (local) or http(s)://your-mlflow-server (production)",
            )
        )
    return errors


def _deployment_errors(settings: FoundationSettings, profile: str, path: Path, line: Any) -> list[SpecError]:
    """A profile other than `local` serves many hosts: keys on the API, a shared lakehouse and tracking server."""
    errors: list[SpecError] = []
    remote = any(settings.lakehouse.root.startswith(s) for s in OBJECT_STORE_SCHEMES)
    uri = settings.mlflow.tracking_uri
    if settings.api.open:
        errors.append(
            SpecError(
                path,
                line(("api", "open")),
                "api.open",
                f"the API serves without keys in profile {profile!r}",
                "set api.open: false and give keys in FOUNDATION_API_KEYS",
            )
        )
    warn = "warning"
    if not remote:
        errors.append(
            SpecError(
                path,
                line(("lakehouse", "root")),
                "lakehouse.root",
                f"profile {profile!r} keeps the lakehouse on a local folder",
                "every host (Dagster run pods, API replicas) must see the same lakehouse: use s3://, abfss:// or gs://",
                warn,
            )
        )
    if uri.startswith("sqlite:"):
        errors.append(
            SpecError(
                path,
                line(("mlflow", "tracking_uri")),
                "mlflow.tracking_uri",
                f"profile {profile!r} keeps MLflow in a SQLite file",
                "point it at the tracking server (http://mlflow:5000, docs/operations.md#mlflow-tracking-server)",
                warn,
            )
        )
    return errors


def yaml_loc(data: Any, loc: Loc) -> Loc:
    """Pure: a pydantic error's location without the parts the YAML does not have (the tag pydantic adds for a
    tagged union, e.g. `email` in notifications.channels.mail.email.password), so its line can be found."""
    node, kept = data, []
    for i, part in enumerate(loc):
        in_mapping = isinstance(node, Mapping) and part in node
        if in_mapping or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            node = node[part]
        elif isinstance(node, Mapping) and part in [v for v in node.values() if isinstance(v, str)]:
            continue  # the tag: the value of the union's discriminator (`type: email`)
        else:
            return (*kept, *loc[i:])
        kept.append(part)
    return tuple(kept)


def check_profile(
    workspace: Path, profile: str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[FoundationSettings | None, list[SpecError]]:
    """Validate the settings of a profile without connecting: types and known keys, secrets only as `${VAR}`,
    settings a deployment needs; every `${VAR}` that is unset is listed (a warning: CI holds no production secret).

    Returns the settings (unset references left as written) when they validate, and every problem found."""
    env = os.environ if environ is None else environ
    name = selected_profile(profile, env)
    path = workspace / SETTINGS_FILE
    doc, errors = read_document(workspace)
    if errors:
        return None, errors
    data = (doc.data if doc is not None else None) or {}
    if not isinstance(data, Mapping):
        return None, [
            SpecError(path, 1, "", "the settings file must be a mapping of sections", "see docs/operations.md")
        ]
    try:
        merged = apply_profile(data, name, path)
    except SettingsError as exc:
        return None, [SpecError(path, doc.line_of((PROFILES_KEY,)) if doc else None, PROFILES_KEY, str(exc))]

    def line(loc: Loc) -> int | None:
        return _profile_line(doc, name, loc)

    problems = _secret_problems(merged, env, name, path, line)
    expanded = expand_settings(merged, env, strict=False)
    try:
        settings = FoundationSettings(**expanded)
    except ValidationError as exc:
        return None, problems + _type_problems(exc, merged, path, line)
    problems.extend(_semantic_errors(settings, name, path, line))
    return settings, problems


def _secret_problems(
    merged: Mapping[str, Any], env: Mapping[str, str], profile: str, path: Path, line: Any
) -> list[SpecError]:
    """A secret written in the file (an error), and every `${VAR}` unset here (a warning)."""
    problems: list[SpecError] = []
    for loc in sorted(set(literal_secrets(merged)), key=str):
        field = ".".join(str(p) for p in loc)
        problems.append(
            SpecError(
                path,
                line(loc),
                field,
                "a secret written in the YAML (its value is not shown)",
                f"write {loc[-1]}: ${{MY_VAR}} and export MY_VAR from your secret store",
            )
        )
    for loc, variable in env_references(merged):
        if variable not in env:
            field = ".".join(str(p) for p in loc)
            problems.append(
                SpecError(
                    path,
                    line(loc),
                    field,
                    f"environment variable {variable} is not set",
                    f"export {variable} where profile {profile!r} runs",
                    "warning",
                )
            )
    return problems


def _type_problems(exc: ValidationError, merged: Mapping[str, Any], path: Path, line: Any) -> list[SpecError]:
    """Pydantic's errors at their YAML line; the message only: the input (maybe an expanded secret) is never shown."""
    literal = set(literal_secrets(merged))
    problems: list[SpecError] = []
    for err in exc.errors():
        loc = yaml_loc(merged, tuple(err["loc"]))
        if loc in literal:  # already reported as a literal secret
            continue
        field = ".".join(str(p) for p in loc)
        doc_page = "docs/automation.md" if loc and loc[0] == "automation" else "docs/operations.md"
        hint = "remove it or fix its spelling" if err["type"] == "extra_forbidden" else f"see {doc_page}"
        problems.append(SpecError(path, line(loc), field, err["msg"], hint))
    return problems
