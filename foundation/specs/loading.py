"""The one loader of YAML specs: read each file, validate it against its kind's model, collect every error.

Every kind (use case, source, KPI, model spec) goes through `read_documents` and `validate_document`, so a syntax
error, an unknown key or a duplicate name reads the same in every file. Which files make a workspace is not known
here: `foundation.core.workspace` lists them and calls these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

from foundation.specs.errors import SpecError
from foundation.specs.validation import validate_document
from foundation.specs.yaml_source import YamlDocument, load_yaml


class Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class SpecKind(Generic[N]):
    """One YAML kind: its model, how an error names one of it, and the reference page its hints point at."""

    model: type[N]
    noun: str
    docs: str


@dataclass(frozen=True)
class Declared(Generic[N]):
    """A validated spec, the use case it belongs to, and the document it was read from (for line numbers)."""

    usecase: str
    spec: N
    path: Path
    doc: YamlDocument = field(compare=False, repr=False)


def read_spec(path: Path, model: type[M], docs: str) -> tuple[M | None, list[SpecError]]:
    """Read and validate one file holding one spec (e.g. a use case's usecase.yaml)."""
    doc, errors = load_yaml(path)
    if doc is None:
        return None, errors
    spec, spec_errors = validate_document(doc, model, docs)
    return spec, errors + spec_errors


def read_documents(files: Iterable[tuple[str, Path]]) -> tuple[list[tuple[str, YamlDocument]], list[SpecError]]:
    """Parse every (usecase, path) file; a file that does not parse gives its errors and no document."""
    docs: list[tuple[str, YamlDocument]] = []
    errors: list[SpecError] = []
    for usecase, path in files:
        doc, doc_errors = load_yaml(path)
        errors.extend(doc_errors)
        if doc is not None:
            docs.append((usecase, doc))
    return docs, errors


def read_specs(
    files: Iterable[tuple[str, Path]],
    kind: SpecKind[N],
    refuse: Callable[[YamlDocument], list[SpecError]] | None = None,
) -> tuple[list[Declared[N]], list[SpecError]]:
    """Read and validate every file of one kind; names are unique within a use case.

    `refuse`: extra problems found in the raw document before validation (e.g. a secret written in it)."""
    declared: list[Declared[N]] = []
    errors: list[SpecError] = []
    seen: dict[tuple[str, str], Path] = {}
    for usecase, path in files:
        doc, doc_errors = load_yaml(path)
        errors.extend(doc_errors)
        if doc is None:
            continue
        if refuse is not None:
            errors.extend(refuse(doc))
        spec, spec_errors = validate_document(doc, kind.model, kind.docs)
        errors.extend(spec_errors)
        if spec is None:
            continue
        key = (usecase, spec.name)
        if key in seen:
            errors.append(
                SpecError(
                    path,
                    doc.line_of(("name",)),
                    "name",
                    f"{kind.noun} {spec.name!r} is already declared in {seen[key].name}",
                    f"{kind.noun} names are unique within a use case",
                )
            )
            continue
        seen[key] = path
        declared.append(Declared(usecase, spec, path, doc))
    return declared, errors
