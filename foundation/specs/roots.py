"""Where a source may read from: the workspace, the lakehouse, and the roots listed in `ingest.allowed_roots`.

A source YAML names files (`extract.path` of csv/parquet/json), Delta tables (`delta` path), SQLite databases
(`sql` url) and HTML files (`html_table` url). Each is judged after `${VAR}` expansion and after resolving `..` and
symlinks (os.path.realpath), so neither an absolute path, a climb nor a symlink inside the workspace reaches a file
outside the roots. Object-store URIs (s3://bucket/prefix) are judged by prefix, on whole path segments.

`foundation check` judges what it can see now; a load judges again what it is about to read (a glob may match a
symlink created since, and a `${VAR}` path resolves only at run time), with the same message.
"""

from __future__ import annotations

import glob
import os
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from foundation.specs.errors import SpecError
from foundation.specs.secrets import MissingSecretError, resolve

SETTING = "ingest.allowed_roots"
GLOB_CHARS = ("*", "?", "[")
LineOf = Callable[[tuple[str | int, ...]], int | None]
PathKind = Literal["files", "table", "sqlite", "page"]


@dataclass(frozen=True)
class SourcePath:
    """One path-like value of a source YAML, where it sits and what it names."""

    loc: tuple[str | int, ...]  # in the YAML, e.g. ("extract", "path", 1)
    value: str  # as declared (may hold ${VAR})
    kind: PathKind

    @property
    def field(self) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(self.loc))


def declared_paths(extract: object) -> list[SourcePath]:
    """Pure: every path-like value of an extract (rest_api has none: it only calls URLs)."""
    kind = getattr(extract, "type", None)
    if kind in ("csv", "parquet", "json", "ndjson"):
        path = extract.path  # type: ignore[attr-defined]
        if isinstance(path, str):
            return [SourcePath(("extract", "path"), path, "files")]
        return [SourcePath(("extract", "path", i), p, "files") for i, p in enumerate(path)]
    if kind == "delta":
        return [SourcePath(("extract", "path"), extract.path, "table")]  # type: ignore[attr-defined]
    if kind == "sql":
        return [SourcePath(("extract", "url"), extract.url, "sqlite")]  # type: ignore[attr-defined]
    if kind == "html_table":
        return [SourcePath(("extract", "url"), extract.url, "page")]  # type: ignore[attr-defined]
    return []


def local_target(kind: PathKind, resolved: str) -> str | None:
    """Pure: the file, folder or URI a resolved value reads; None when it reads no file (a server's URL)."""
    resolved = resolved.strip()
    if kind == "sqlite":
        if not resolved.lower().startswith("sqlite://"):
            return None  # postgresql://...: a server, not a file
        # SQLAlchemy's convention, as the sql connector reads it: sqlite:///relative.db, sqlite:////absolute.db
        raw = unquote(resolved.split("://", 1)[1]).split("?", 1)[0]
        return raw[1:] if raw.startswith("/") else raw
    if kind == "page":
        if resolved.lower().startswith(("http://", "https://")):
            return None
        return resolved[len("file://") :] if resolved.startswith("file://") else resolved
    if resolved.startswith("file://"):
        return resolved[len("file://") :]
    return resolved


def glob_base(pattern: str) -> str:
    """Pure: the folder a glob looks under (its part before the first wildcard); the path itself without one."""
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if any(c in part for c in GLOB_CHARS):
            base = "/".join(parts[:i])
            return base or ("/" if pattern.startswith("/") else ".")
    return pattern


def _is_uri(value: str) -> bool:
    return "://" in value


def _normal_uri(uri: str) -> str:
    parts = urlsplit(uri)
    path = posixpath.normpath(parts.path) if parts.path not in ("", "/") else ""
    return f"{parts.scheme.lower()}://{parts.netloc}{path}".rstrip("/")


def _under(location: str, root: str) -> bool:
    return location == root or location.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class AllowedRoots:
    """The folders (real paths) and object-store prefixes a source may read from."""

    local: tuple[str, ...]
    remote: tuple[str, ...]

    @classmethod
    def of(cls, workspace_root: Path, declared: Iterable[str], lakehouse_root: str) -> AllowedRoots:
        """The workspace and the lakehouse always; then every declared root (relative ones in the workspace)."""
        local: list[str] = []
        remote: list[str] = []
        for root in [str(workspace_root), lakehouse_root, *declared]:
            location = cls.locate_in(workspace_root, root)
            target = remote if _is_uri(location) else local
            if location not in target:
                target.append(location)
        return cls(tuple(local), tuple(remote))

    @staticmethod
    def locate_in(workspace_root: Path, value: str) -> str:
        """A normalised URI, or the real path (symlinks and `..` resolved) of a path relative to the workspace."""
        if value.startswith("file://"):
            value = value[len("file://") :]
        if _is_uri(value):
            return _normal_uri(value)
        return os.path.realpath(workspace_root / value)

    def locate(self, workspace_root: Path, value: str) -> str:
        return self.locate_in(workspace_root, value)

    def allows(self, location: str) -> bool:
        """True when a located path or URI is one of the roots or inside one."""
        if _is_uri(location):  # the scheme is case-blind, object keys are not
            return any(_under(_normal_uri(location), root) for root in self.remote)
        return any(_under(location, root) for root in self.local)

    def describe(self) -> str:
        return ", ".join([*self.local, *self.remote])


def _table_files(folder: str) -> list[str]:
    """The data files a local Delta table's snapshot reads (deltalake keeps them under the folder, but a part file
    may be a symlink leading out of it); none when it is not a readable table (the load then says why)."""
    if not os.path.isdir(os.path.join(folder, "_delta_log")):
        return []
    from deltalake import DeltaTable  # only for delta sources

    try:
        return list(DeltaTable(folder).file_uris())
    except Exception:  # an unreadable table is the load's error to report, not this check's
        return []


def _candidates(workspace_root: Path, kind: PathKind, target: str) -> list[str]:
    """What a target reads: for a glob, the folder it looks under and every file it matches now; for a local Delta
    table, its folder and its snapshot's data files."""
    if _is_uri(target) or kind not in ("files", "table"):
        return [target]
    absolute = target if os.path.isabs(target) else str(workspace_root / target)
    if kind == "table":
        return [target, *_table_files(absolute)]
    matched = sorted(p for p in glob.glob(absolute, recursive=True) if os.path.isfile(p))
    return list(dict.fromkeys([glob_base(target), *matched]))


def _suggestion(kind: PathKind, location: str) -> str:
    """The folder to allow: a Delta table's or a glob's own folder, else the file's parent."""
    if _is_uri(location):
        return location if kind == "table" else posixpath.dirname(location)
    return location if kind == "table" or os.path.isdir(location) else os.path.dirname(location)


def path_errors(
    workspace_root: Path,
    roots: AllowedRoots,
    source_file: Path,
    extract: object,
    line_of: LineOf | None = None,
) -> list[SpecError]:
    """One error per path of the source that reads outside the roots (a `${VAR}` not set yet is skipped: the
    unset variable is reported on its own, and the load judges the path once it is set)."""
    errors: list[SpecError] = []
    for declared in declared_paths(extract):
        try:
            target = local_target(declared.kind, resolve(declared.value, declared.field))
        except MissingSecretError:
            continue
        if not target:
            continue
        located = [roots.locate(workspace_root, c) for c in _candidates(workspace_root, declared.kind, target)]
        refused = list(dict.fromkeys(location for location in located if not roots.allows(location)))
        if not refused:
            continue
        more = f" (and {len(refused) - 1} more match(es))" if len(refused) > 1 else ""
        errors.append(
            SpecError(
                source_file,
                line_of(declared.loc) if line_of else None,
                declared.field,
                f"{declared.value!r} resolves to {refused[0]}{more}, outside the allowed roots ({roots.describe()})",
                f"move the data under an allowed root, or add {_suggestion(declared.kind, refused[0])} to {SETTING} "
                "in foundation.yaml (FOUNDATION_INGEST__ALLOWED_ROOTS in the environment)",
            )
        )
    return errors


class PathNotAllowedError(PermissionError):
    """A load refused to read outside the allowed roots; the message is the `foundation check` error."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.format() for e in errors))

    def __str__(self) -> str:
        return str(self.args[0])


def enforce(workspace_root: Path, roots: AllowedRoots, source_file: Path, extract: object) -> None:
    """Raise PathNotAllowedError when the source would read outside the roots (called by a load, before reading)."""
    if not path_errors(workspace_root, roots, source_file, extract):
        return
    from foundation.specs.yaml_source import load_yaml  # only to name the line in the error

    doc, _ = load_yaml(source_file)
    raise PathNotAllowedError(
        path_errors(workspace_root, roots, source_file, extract, doc.line_of if doc is not None else None)
    )
