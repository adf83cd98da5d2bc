"""A workspace: a folder with `foundation.yaml`, `usecases/<uc>/sources/*.yaml` and the state folder.

This is the one place that knows the folder layout; everything else asks it for paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from foundation.core.settings import SETTINGS_FILE, FoundationSettings, load_settings
from foundation.specs.errors import SpecError, SpecValidationError
from foundation.specs.roots import AllowedRoots, enforce
from foundation.specs.secrets import literal_secrets
from foundation.specs.source import IDENTIFIER_RE, SourceSpec
from foundation.specs.usecase import UsecaseSpec
from foundation.specs.validation import validate_document
from foundation.specs.yaml_source import YamlDocument, load_yaml

USECASES_DIR = "usecases"
WORKSPACE_ENV = "FOUNDATION_WORKSPACE"


@dataclass(frozen=True)
class SourceRef:
    """A validated source and where it was declared."""

    usecase: str
    spec: SourceSpec
    path: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def key(self) -> str:
        """`<usecase>/<source>`: how commands and logs name a source."""
        return f"{self.usecase}/{self.spec.name}"


@dataclass(frozen=True)
class ScanResult:
    sources: list[SourceRef] = field(default_factory=list)
    usecases: dict[str, UsecaseSpec | None] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not [e for e in self.errors if e.severity == "error"]


def find_workspace(start: Path | None = None) -> Path:
    """The workspace root: $FOUNDATION_WORKSPACE, else the nearest folder upwards holding foundation.yaml."""
    if os.environ.get(WORKSPACE_ENV):
        return Path(os.environ[WORKSPACE_ENV]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SETTINGS_FILE).exists():
            return folder
    return here


def _literal_secret_errors(doc: YamlDocument) -> list[SpecError]:
    return [
        SpecError(
            doc.path,
            doc.line_of(loc),
            ".".join(str(p) for p in loc),
            "a secret written in the YAML (its value is not shown)",
            f"move it to an environment variable and write {loc[-1]}: ${{MY_VAR}}",
        )
        for loc in literal_secrets(doc.data)
    ]


def scan_usecases(root: Path) -> ScanResult:
    """Read and validate every use-case and source YAML under `root/usecases`; collect all errors."""
    result = ScanResult()
    base = root / USECASES_DIR
    if not base.is_dir():
        return result
    for uc_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        usecase = uc_dir.name
        if not IDENTIFIER_RE.match(usecase) or "__" in usecase:
            result.errors.append(
                SpecError(
                    uc_dir,
                    None,
                    "",
                    f"use-case folder name {usecase!r} is not lower_snake_case (single underscores)",
                    "rename the folder (it becomes a Dagster group and a table prefix)",
                )
            )
            continue
        uc_file = uc_dir / "usecase.yaml"
        uc_spec: UsecaseSpec | None = None
        if uc_file.exists():
            doc, errors = load_yaml(uc_file)
            result.errors.extend(errors)
            if doc is not None:
                uc_spec, errors = validate_document(doc, UsecaseSpec)
                result.errors.extend(errors)
        else:
            result.errors.append(
                SpecError(
                    uc_file,
                    None,
                    "",
                    "no usecase.yaml: the use case has no owner or description",
                    "add usecase.yaml (title, description, owner)",
                    severity="warning",
                )
            )
        result.usecases[usecase] = uc_spec
        seen: dict[str, Path] = {}
        for path in sorted((uc_dir / "sources").glob("*.y*ml")):
            doc, errors = load_yaml(path)
            result.errors.extend(errors)
            if doc is None:
                continue
            result.errors.extend(_literal_secret_errors(doc))
            spec, errors = validate_document(doc, SourceSpec)
            result.errors.extend(errors)
            if spec is None:
                continue
            if spec.name in seen:
                result.errors.append(
                    SpecError(
                        path,
                        doc.line_of(("name",)),
                        "name",
                        f"source {spec.name!r} is already declared in {seen[spec.name].name}",
                        "source names are unique within a use case",
                    )
                )
                continue
            seen[spec.name] = path
            result.sources.append(SourceRef(usecase, spec, path))
    result.errors.sort(key=lambda e: (str(e.path), e.line or 0))
    return result


@dataclass
class Workspace:
    root: Path
    settings: FoundationSettings
    profile: str = "local"  # the settings profile in use (foundation/core/settings_profiles.py)

    @classmethod
    def open(cls, root: Path | None = None, profile: str | None = None) -> Workspace:
        """The workspace at `root` (default: found from the current folder) with the settings of `profile`
        (default: FOUNDATION_PROFILE, else `local`)."""
        from foundation.core.settings_profiles import selected_profile

        root = (root or find_workspace()).resolve()
        name = selected_profile(profile)
        return cls(root=root, settings=load_settings(root, name), profile=name)

    def resolve(self, path: str) -> str:
        """A settings or spec path made absolute against the workspace root (URIs are left alone)."""
        if "://" in path or Path(path).is_absolute():
            return path
        return str(self.root / path)

    @property
    def state_dir(self) -> Path:
        return Path(self.resolve(self.settings.state_dir))

    @property
    def lakehouse_root(self) -> str:
        return self.resolve(self.settings.lakehouse.root)

    def bronze_uri(self, usecase: str, source: str) -> str:
        return f"{self.lakehouse_root.rstrip('/')}/bronze/{usecase}/{source}"

    def quarantine_uri(self, usecase: str, source: str) -> str:
        return f"{self.lakehouse_root.rstrip('/')}/bronze/{usecase}/{source}__quarantine"

    @cached_property
    def allowed_roots(self) -> AllowedRoots:
        """Where sources may read: the workspace, the lakehouse and `ingest.allowed_roots`."""
        return AllowedRoots.of(self.root, self.settings.ingest.allowed_roots, self.lakehouse_root)

    def refuse_paths_outside_roots(self, source: SourceRef) -> None:
        """Raise PathNotAllowedError if `source` would read outside the allowed roots (judged now, not at check)."""
        enforce(self.root, self.allowed_roots, source.path, source.spec.extract)

    @cached_property
    def scan(self) -> ScanResult:
        return scan_usecases(self.root)

    def sources(self) -> list[SourceRef]:
        """Every valid source; raises if any spec is invalid (run `foundation check` for the list)."""
        if not self.scan.ok:
            raise SpecValidationError([e for e in self.scan.errors if e.severity == "error"])
        return list(self.scan.sources)

    def select_sources(self, selectors: list[str] | None = None) -> list[SourceRef]:
        """Sources matching `usecase`, `source`, or `usecase/source` selectors (all when none given)."""
        sources = self.sources()
        if not selectors:
            return sources
        chosen: list[SourceRef] = []
        for selector in selectors:
            matched = [s for s in sources if selector in (s.usecase, s.name, s.key)]
            if not matched:
                known = ", ".join(sorted({s.usecase for s in sources} | {s.key for s in sources}))
                raise LookupError(f"no use case or source named {selector!r}; known: {known}")
            chosen.extend(s for s in matched if s not in chosen)
        return chosen
