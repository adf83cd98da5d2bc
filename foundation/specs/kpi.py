"""The KPI declaration format (`usecases/<uc>/kpis/*.yaml`) and its loading, with `file:line` errors.

Vocabulary from the dbt semantic layer (MetricFlow) and Cube: a KPI is an aggregate `expression` (a measure) over a
`model`, sliced by a time dimension (`time`) at `grains` and by `dimensions`, optionally with a `filter`. A complex KPI
gives plain `sql` instead, with the same metadata. `extends: <kpi id>` reuses another KPI's definition (from any use
case) and overrides what differs, typically `model`, `time` and `dimensions`.

Parsing and resolution are pure; `load_kpis` is the one function that reads files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from foundation.specs.errors import SpecError
from foundation.specs.validation import validate_document
from foundation.specs.yaml_source import YamlDocument, load_yaml

KPIS_DIR = "kpis"
GRAINS = ("day", "week", "month")
DOCS_HINT = "docs/kpis.md"
IDENTIFIER_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _identifier(value: str) -> str:
    if not IDENTIFIER_RE.match(value):
        raise ValueError(f"{value!r} is not lower_snake_case (a letter, then letters, digits or underscores)")
    return value


def _email(value: str) -> str:
    if not EMAIL_RE.match(value):
        raise ValueError(f"{value!r} is not an e-mail address: the owner is a person or team mailbox")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


Identifier = Annotated[str, AfterValidator(_identifier)]


class KpiSpec(BaseModel):
    """One KPI: what it means, who owns it, how it is computed, and what good looks like."""

    model_config = ConfigDict(extra="forbid")

    id: Identifier = Field(description="Unique across the platform; the dbt model is `kpi_<id>`.")
    label: Annotated[str, AfterValidator(_not_blank)] = Field(description="Short human name.")
    description: Annotated[str, AfterValidator(_not_blank)] = Field(description="What it measures and why.")
    owner: Annotated[str, AfterValidator(_email)] = Field(description="Who answers for its definition.")
    unit: Annotated[str, AfterValidator(_not_blank)] = Field(description="e.g. '%', 'h', 'per 1,000 h'.")
    direction: Literal["higher", "lower"] = Field(description="Which way is better.")
    target: float | None = Field(None, description="The value aimed at.")
    alert: float | None = Field(None, description="Alert when the value is worse than this.")
    grains: list[Literal["day", "week", "month"]] = Field(default_factory=lambda: ["day", "week", "month"])
    dimensions: list[Identifier] = Field(default_factory=list, description="Columns of the model to slice by.")
    status: Literal["draft", "certified"] = "draft"
    model: Identifier | None = Field(None, description="The dbt model the KPI aggregates (simple KPIs).")
    time: Identifier | None = Field(None, description="The model's date or timestamp column (the time dimension).")
    expression: str | None = Field(None, description="Aggregate SQL over the model, e.g. 'sum(failures)'.")
    filter: str | None = Field(None, description="SQL condition on the model's rows.")
    sql: str | None = Field(None, description="Complex KPI: a SELECT returning grain, period, dimensions, value.")
    predictions: Identifier | None = Field(
        None,
        description="Model KPI: the model spec (usecases/<uc>/ml/<name>.yaml) whose champion's batch predictions it "
        "counts: distinct entities flagged per period. Published by the predictions asset, not by dbt.",
    )
    extends: Identifier | None = Field(None, description="Reuse this KPI's definition; override what differs.")
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> KpiSpec:
        if self.predictions is not None:
            given = [k for k in ("model", "time", "expression", "filter", "sql") if getattr(self, k) is not None]
            if given or self.dimensions:
                raise ValueError(
                    f"a model KPI (`predictions:`) is computed from the model's predictions: remove "
                    f"{', '.join(given + (['dimensions'] if self.dimensions else []))}"
                )
        elif self.sql is None:
            missing = [k for k in ("model", "time", "expression") if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f"a simple KPI needs model, time and expression (missing: {', '.join(missing)}); "
                    "or give `sql:` for a complex KPI"
                )
        elif self.expression is not None:
            raise ValueError("give either `expression:` (simple KPI) or `sql:` (complex KPI), not both")
        if self.target is not None and self.alert is not None:
            worse = self.alert > self.target if self.direction == "higher" else self.alert < self.target
            if worse:
                raise ValueError(
                    f"alert {self.alert} is better than target {self.target} for a KPI where "
                    f"{self.direction} is better; swap them or fix direction"
                )
        if not self.grains:
            raise ValueError("grains must list at least one of day, week, month")
        return self

    @property
    def model_name(self) -> str:
        """The dbt model that materialises this KPI's values."""
        return f"kpi_{self.id}"


@dataclass(frozen=True)
class KpiRef:
    """A validated KPI and where it was declared."""

    usecase: str
    spec: KpiSpec
    path: Path
    line_of: dict[str, int] = field(default_factory=dict, compare=False)


@dataclass
class KpiScan:
    kpis: list[KpiRef] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not [e for e in self.errors if e.severity == "error"]


def _kpi_hint(error: SpecError) -> SpecError:
    # The shared validator points at the sources reference; KPI errors should point at the KPI one.
    hint = error.hint.replace("docs/sources.md", DOCS_HINT)
    return SpecError(error.path, error.line, error.field, error.message, hint, error.severity)


def resolve_kpis(docs: list[tuple[str, YamlDocument]]) -> KpiScan:
    """Validate parsed KPI documents (usecase, document), resolving `extends:` across use cases.

    Pure: no file I/O. A child inherits every key of its base except `id`, `status` and `extends` (a reused KPI is
    certified on its own), then overrides what it declares.
    """
    scan = KpiScan()
    raw: dict[str, tuple[str, YamlDocument]] = {}
    for usecase, doc in docs:
        if not isinstance(doc.data, dict):
            found = "an empty file" if doc.data is None else type(doc.data).__name__
            scan.errors.append(SpecError(doc.path, 1, "", f"expected a mapping of keys, found {found}"))
            continue
        kpi_id = doc.data.get("id")
        if isinstance(kpi_id, str) and kpi_id in raw:
            scan.errors.append(
                SpecError(
                    doc.path,
                    doc.line_of(("id",)),
                    "id",
                    f"KPI {kpi_id!r} is already declared in {raw[kpi_id][1].path}",
                    "KPI ids are unique across the platform: rename one, or reuse it with `extends:`",
                )
            )
            continue
        if isinstance(kpi_id, str):
            raw[kpi_id] = (usecase, doc)

    def merged(kpi_id: str, chain: tuple[str, ...]) -> dict[str, Any] | SpecError:
        _, doc = raw[kpi_id]
        base_id = doc.data.get("extends")
        if base_id is None:
            return dict(doc.data)
        line = doc.line_of(("extends",))
        if base_id in chain:
            return SpecError(doc.path, line, "extends", f"circular extends: {' -> '.join((*chain, base_id))}", "")
        if base_id not in raw:
            known = ", ".join(sorted(raw)) or "none"
            return SpecError(
                doc.path, line, "extends", f"no KPI with id {base_id!r} to extend", f"known KPI ids: {known}"
            )
        base = merged(base_id, (*chain, base_id))
        if isinstance(base, SpecError):
            return base
        inherited = {k: v for k, v in base.items() if k not in ("id", "status", "extends")}
        child = dict(doc.data)
        if "sql" in child:
            inherited.pop("expression", None)
        if "expression" in child:
            inherited.pop("sql", None)
        return {**inherited, **child}

    for usecase, doc in docs:
        kpi_id = doc.data.get("id") if isinstance(doc.data, dict) else None
        if not isinstance(kpi_id, str) or raw.get(kpi_id, (None, None))[1] is not doc:
            if isinstance(doc.data, dict) and not isinstance(kpi_id, str):
                spec, errors = validate_document(doc, KpiSpec)  # reports the missing/invalid id with its line
                scan.errors.extend(_kpi_hint(e) for e in errors)
            continue
        data = merged(kpi_id, (kpi_id,))
        if isinstance(data, SpecError):
            scan.errors.append(data)
            continue
        spec, errors = validate_document(YamlDocument(doc.path, data, doc.root), KpiSpec)
        scan.errors.extend(_kpi_hint(e) for e in errors)
        if spec is not None:
            lines = {k: doc.line_of((k,)) or 1 for k in data}
            scan.kpis.append(KpiRef(usecase, spec, doc.path, lines))
    scan.errors.sort(key=lambda e: (str(e.path), e.line or 0))
    return scan


def kpi_files(workspace_root: Path) -> list[tuple[str, Path]]:
    """(usecase, path) of every KPI declaration under usecases/<uc>/kpis/."""
    base = workspace_root / "usecases"
    if not base.is_dir():
        return []
    return [
        (path.parent.parent.name, path)
        for path in sorted(base.glob(f"*/{KPIS_DIR}/*.y*ml"))
        if not path.parent.parent.name.startswith((".", "_"))
    ]


def load_kpis(workspace_root: Path) -> KpiScan:
    """Read, validate and resolve every KPI declaration of a workspace; collects all errors."""
    docs: list[tuple[str, YamlDocument]] = []
    errors: list[SpecError] = []
    for usecase, path in kpi_files(workspace_root):
        doc, doc_errors = load_yaml(path)
        errors.extend(doc_errors)
        if doc is not None:
            docs.append((usecase, doc))
    scan = resolve_kpis(docs)
    scan.errors[:0] = errors
    return scan
