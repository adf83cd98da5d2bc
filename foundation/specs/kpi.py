"""The KPI declaration format (`usecases/<uc>/kpis/*.yaml`) and its loading, with `file:line` errors.

Vocabulary from the dbt semantic layer (MetricFlow) and Cube: a KPI is an aggregate `expression` (a measure) over a
`model`, sliced by a time dimension (`time`) at `grains` and by `dimensions`, optionally with a `filter`; without
`time`, one value per refresh (grain `refresh`). A complex KPI
gives plain `sql` instead, with the same metadata. `extends: <kpi id>` reuses another KPI's definition (from any use
case) and overrides what differs, typically `model`, `time` and `dimensions`.

Parsing and resolution are pure; `foundation.core.workspace.load_kpis` finds and reads the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from foundation.specs.errors import SpecError
from foundation.specs.fields import Email, Identifier, Text
from foundation.specs.validation import validate_document
from foundation.specs.yaml_source import YamlDocument

GRAINS = ("day", "week", "month")
REFRESH = "refresh"  # the one grain of a KPI without a time column: one value per refresh, dated by its day
DOCS_HINT = "docs/kpis.md"


class KpiSpec(BaseModel):
    """One KPI: what it means, who owns it, how it is computed, and what good looks like."""

    model_config = ConfigDict(extra="forbid")

    id: Identifier = Field(description="Unique across the platform; the dbt model is `kpi_<id>`.")
    label: Text = Field(description="Short human name.")
    description: Text = Field(description="What it measures and why.")
    owner: Email = Field(description="Who answers for its definition.")
    unit: Text = Field(description="e.g. '%', 'h', 'per 1,000 h'.")
    direction: Literal["higher", "lower"] = Field(description="Which way is better.")
    target: float | None = Field(None, description="The value aimed at.")
    alert: float | None = Field(None, description="Alert when the value is worse than this.")
    grains: list[Literal["day", "week", "month", "refresh"]] = Field(
        default_factory=lambda: ["day", "week", "month"],
        description="Periods to aggregate by `time`. A KPI without `time` has the one grain `refresh`: one value per "
        "refresh (a second refresh on the same day replaces that day's value).",
    )
    dimensions: list[Identifier] = Field(default_factory=list, description="Columns of the model to slice by.")
    status: Literal["draft", "certified"] = "draft"
    model: Identifier | None = Field(None, description="The dbt model the KPI aggregates (simple KPIs).")
    time: Identifier | None = Field(
        None,
        description="The model's date or timestamp column (the time dimension). Without it, the KPI is computed over "
        "all the model's rows at each refresh and keeps one value per refresh.",
    )
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
            if REFRESH in self.grains:
                raise ValueError(f"a model KPI is counted per day, week or month of scoring: remove {REFRESH!r}")
        elif self.sql is None:
            missing = [k for k in ("model", "expression") if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f"a simple KPI needs model and expression (missing: {', '.join(missing)}), and `time` to be "
                    "followed per day, week or month; or give `sql:` for a complex KPI"
                )
            self._grains_follow_time()
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

    def _grains_follow_time(self) -> None:
        """A simple KPI with `time` has calendar grains; one without has the one grain `refresh`."""
        if self.time is not None and REFRESH in self.grains:
            raise ValueError(f"grain {REFRESH!r} is for a KPI without `time`: use day, week or month")
        if self.time is None:
            if "grains" in self.model_fields_set and self.grains != [REFRESH]:
                raise ValueError(
                    f"grains {self.grains} need a `time` column; a KPI without one has one value per refresh "
                    f"(grains: [{REFRESH}], or leave grains out)"
                )
            self.grains = [REFRESH]

    @property
    def snapshot(self) -> bool:
        """True for a simple KPI without a time column: one value per refresh, its history kept across refreshes."""
        return self.sql is None and self.predictions is None and self.time is None

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


Declarations = dict[str, tuple[str, YamlDocument]]  # KPI id -> (usecase, document)


def _by_id(docs: list[tuple[str, YamlDocument]]) -> tuple[Declarations, list[SpecError]]:
    """Each KPI document by its id; a document that is not a mapping, or a second one with the same id, is an error."""
    raw: Declarations = {}
    errors: list[SpecError] = []
    for usecase, doc in docs:
        if not isinstance(doc.data, dict):
            found = "an empty file" if doc.data is None else type(doc.data).__name__
            errors.append(SpecError(doc.path, 1, "", f"expected a mapping of keys, found {found}"))
            continue
        kpi_id = doc.data.get("id")
        if isinstance(kpi_id, str) and kpi_id in raw:
            errors.append(
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
    return raw, errors


def _merged(raw: Declarations, kpi_id: str, chain: tuple[str, ...]) -> dict[str, Any] | SpecError:
    """The keys of a KPI with those of the KPIs it extends, nearest first; an unknown or circular base is an error."""
    _, doc = raw[kpi_id]
    base_id = doc.data.get("extends")
    if base_id is None:
        return dict(doc.data)
    line = doc.line_of(("extends",))
    if base_id in chain:
        return SpecError(doc.path, line, "extends", f"circular extends: {' -> '.join((*chain, base_id))}", "")
    if base_id not in raw:
        known = ", ".join(sorted(raw)) or "none"
        return SpecError(doc.path, line, "extends", f"no KPI with id {base_id!r} to extend", f"known KPI ids: {known}")
    base = _merged(raw, base_id, (*chain, base_id))
    if isinstance(base, SpecError):
        return base
    inherited = {k: v for k, v in base.items() if k not in ("id", "status", "extends")}
    child = dict(doc.data)
    if "sql" in child:
        inherited.pop("expression", None)
    if "expression" in child:
        inherited.pop("sql", None)
    return {**inherited, **child}


def resolve_kpis(docs: list[tuple[str, YamlDocument]]) -> KpiScan:
    """Validate parsed KPI documents (usecase, document), resolving `extends:` across use cases.

    Pure: no file I/O. A child inherits every key of its base except `id`, `status` and `extends` (a reused KPI is
    certified on its own), then overrides what it declares.
    """
    raw, errors = _by_id(docs)
    scan = KpiScan(errors=errors)
    for usecase, doc in docs:
        kpi_id = doc.data.get("id") if isinstance(doc.data, dict) else None
        if not isinstance(kpi_id, str) or raw.get(kpi_id, (None, None))[1] is not doc:
            if isinstance(doc.data, dict) and not isinstance(kpi_id, str):
                spec, errors = validate_document(doc, KpiSpec, DOCS_HINT)  # the missing/invalid id with its line
                scan.errors.extend(errors)
            continue
        data = _merged(raw, kpi_id, (kpi_id,))
        if isinstance(data, SpecError):
            scan.errors.append(data)
            continue
        spec, errors = validate_document(YamlDocument(doc.path, data, doc.root), KpiSpec, DOCS_HINT)
        scan.errors.extend(errors)
        if spec is not None:
            lines = {k: doc.line_of((k,)) or 1 for k in data}
            scan.kpis.append(KpiRef(usecase, spec, doc.path, lines))
    scan.errors.sort(key=lambda e: (str(e.path), e.line or 0))
    return scan
