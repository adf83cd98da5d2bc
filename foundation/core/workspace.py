"""A workspace: a folder with `foundation.yaml`, `usecases/<uc>/` and the state folder.

This is the one place that knows the folder layout; everything else asks it for paths or for the declarations read
from them:

    foundation.yaml
    usecases/<uc>/usecase.yaml        UsecaseSpec       scan_usecases
    usecases/<uc>/sources/*.yaml      SourceSpec        scan_usecases
    usecases/<uc>/kpis/*.yaml         KpiSpec           load_kpis
    usecases/<uc>/ml/*.yaml           ModelSpec         load_model_specs
    schemas/*.schema.json             their JSON Schemas, referenced by each file's `$schema` comment
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from foundation.core.settings import SETTINGS_FILE, FoundationSettings
from foundation.core.settings_profiles import load_settings, selected_profile
from foundation.specs.errors import SpecError, SpecValidationError
from foundation.specs.fields import is_table_name
from foundation.specs.kpi import KpiScan, resolve_kpis
from foundation.specs.loading import SpecKind, read_documents, read_spec, read_specs
from foundation.specs.model import MODEL_KIND, ModelRef, ModelScan
from foundation.specs.roots import AllowedRoots, enforce
from foundation.specs.secrets import literal_secrets
from foundation.specs.source import SourceSpec
from foundation.specs.usecase import UsecaseSpec
from foundation.specs.yaml_source import YamlDocument

USECASES_DIR = "usecases"
USECASE_FILE = "usecase.yaml"
SOURCES_DIR = "sources"
KPIS_DIR = "kpis"
ML_DIR = "ml"
SCHEMAS_DIR = "schemas"  # the JSON Schemas the YAML files reference (foundation.core.json_schemas)
SOURCE_KIND = SpecKind(SourceSpec, "source", "docs/sources.md")
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


def usecase_dirs(root: Path) -> list[Path]:
    """The use-case folders of a workspace, in name order (`.hidden` and `_private` folders are not use cases)."""
    base = root / USECASES_DIR
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def usecase_file(root: Path, usecase: str) -> Path:
    return root / USECASES_DIR / usecase / USECASE_FILE


def declaration_files(root: Path, folder: str) -> list[tuple[str, Path]]:
    """(usecase, path) of every YAML file in `usecases/<uc>/<folder>/` (folder: SOURCES_DIR, KPIS_DIR, ML_DIR)."""
    return [(d.name, path) for d in usecase_dirs(root) for path in sorted((d / folder).glob("*.y*ml"))]


def kpi_files(root: Path) -> list[tuple[str, Path]]:
    return declaration_files(root, KPIS_DIR)


def model_files(root: Path) -> list[tuple[str, Path]]:
    return declaration_files(root, ML_DIR)


def load_kpis(root: Path) -> KpiScan:
    """Read, validate and resolve every KPI declaration of a workspace (`extends:` across use cases)."""
    docs, errors = read_documents(kpi_files(root))
    scan = resolve_kpis(docs)
    scan.errors[:0] = errors
    return scan


def load_model_specs(root: Path) -> ModelScan:
    """Read and validate every `usecases/<uc>/ml/*.yaml` (syntax and format; not the data model)."""
    declared, errors = read_specs(model_files(root), MODEL_KIND)
    return ModelScan([ModelRef(d.usecase, d.spec, d.path, d.doc) for d in declared], errors)


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


def _usecase_folder_error(uc_dir: Path) -> SpecError:
    return SpecError(
        uc_dir,
        None,
        "",
        f"use-case folder name {uc_dir.name!r} is not lower_snake_case (single underscores)",
        "rename the folder (it becomes a Dagster group and a table prefix)",
    )


def _read_usecase(uc_file: Path) -> tuple[UsecaseSpec | None, list[SpecError]]:
    if uc_file.exists():
        return read_spec(uc_file, UsecaseSpec, "docs/usecases.md")
    hint = "add usecase.yaml (title, description, owner)"
    missing = "no usecase.yaml: the use case has no owner or description"
    return None, [SpecError(uc_file, None, "", missing, hint, severity="warning")]


def scan_usecases(root: Path) -> ScanResult:
    """Read and validate every use-case and source YAML under `root/usecases`; collect all errors."""
    result = ScanResult()
    for uc_dir in usecase_dirs(root):
        if not is_table_name(uc_dir.name):
            result.errors.append(_usecase_folder_error(uc_dir))
            continue
        uc_spec, errors = _read_usecase(uc_dir / USECASE_FILE)
        result.errors.extend(errors)
        result.usecases[uc_dir.name] = uc_spec
        files = [(uc_dir.name, path) for path in sorted((uc_dir / SOURCES_DIR).glob("*.y*ml"))]
        declared, errors = read_specs(files, SOURCE_KIND, refuse=_literal_secret_errors)
        result.errors.extend(errors)
        result.sources.extend(SourceRef(d.usecase, d.spec, d.path) for d in declared)
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
    def ml_state_dir(self) -> Path:
        """Where each model keeps its training report (`<ml_state_dir>/<uc>__<model>/`)."""
        return self.state_dir / ML_DIR

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
