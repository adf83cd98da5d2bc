"""The KPI catalogue: definitions from the published dbt manifest, values from the gold Delta snapshots.

It reads only what a build publishes (`<lakehouse>/gold/_catalog/kpis.json` and `<lakehouse>/gold/<uc>/kpi_<id>`),
never the DuckDB warehouse, so it keeps answering while a run writes. Each read takes the tables' current Delta
snapshot through DuckDB's Parquet reader (see foundation.engine.lakehouse.catalog).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from deltalake.exceptions import TableNotFoundError

from foundation.core.workspace import Workspace
from foundation.engine.dbt.publish import catalog_uri
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import read_text, storage_options_of

GRAIN_ORDER = ("day", "week", "month")
TREND_POINTS = 12


class KpiNotFoundError(LookupError):
    pass


@dataclass(frozen=True)
class Point:
    period: date
    value: float | None


def status_against_target(value: float | None, direction: str, target: float | None, alert: float | None) -> str:
    """`on_target`, `off_target` (worse than target), `alert` (worse than the alert threshold), `no_target` (none
    declared, and not past an alert threshold: nothing to be on) or `no_data`."""
    if value is None:
        return "no_data"
    better = (lambda a, b: a >= b) if direction == "higher" else (lambda a, b: a <= b)
    if alert is not None and not better(value, alert):
        return "alert"
    if target is None:
        return "no_target"
    return "on_target" if better(value, target) else "off_target"


def trend_of(points: list[Point], direction: str) -> str:
    """`improving`, `worsening` or `flat`: the last value against the mean of the ones before it."""
    values = [p.value for p in points if p.value is not None]
    if len(values) < 2:
        return "flat"
    previous = sum(values[:-1]) / len(values[:-1])
    delta = values[-1] - previous
    if abs(delta) <= 1e-9 * max(1.0, abs(previous)):
        return "flat"
    return "improving" if (delta > 0) == (direction == "higher") else "worsening"


def display_grain(kpi: dict[str, Any]) -> str:
    """The finest grain a KPI declares: what lists and charts show by default."""
    grains = kpi.get("grains") or ["day"]
    return min(grains, key=lambda g: GRAIN_ORDER.index(g) if g in GRAIN_ORDER else len(GRAIN_ORDER))


class KpiCatalog:
    """Read-only view of the published catalogue. Cheap to create: open one per request or command."""

    def __init__(self, lakehouse_root: str, storage_options: dict[str, str] | None = None) -> None:
        self.lakehouse_root = lakehouse_root
        self.storage_options = storage_options  # the workspace's (object_store.storage_options_of)
        text = read_text(catalog_uri(lakehouse_root), storage_options)
        if text is not None:
            data = json.loads(text)
            self.generated_at: str | None = data.get("generated_at")
            self._kpis: dict[str, dict[str, Any]] = {k["id"]: k for k in data.get("kpis", [])}
        else:
            self.generated_at = None
            self._kpis = {}

    @classmethod
    def of(cls, workspace: Workspace) -> KpiCatalog:
        """The workspace's catalogue, read with its storage options."""
        return cls(workspace.lakehouse_root, storage_options_of(workspace))

    @property
    def published(self) -> bool:
        return self.generated_at is not None

    def ids(self) -> list[str]:
        return sorted(self._kpis)

    def definition(self, kpi_id: str) -> dict[str, Any]:
        try:
            return self._kpis[kpi_id]
        except KeyError:
            known = ", ".join(self.ids()) or "none published yet (run `foundation run`)"
            raise KpiNotFoundError(f"no KPI {kpi_id!r}; known: {known}") from None

    def history(
        self, kpi_id: str, grain: str | None = None, dimension: str | None = None
    ) -> dict[str | None, list[Point]]:
        """Values per period, oldest first: the total series (key None), or one series per value of `dimension`."""
        kpi = self.definition(kpi_id)
        grain = grain or display_grain(kpi)
        if grain not in kpi.get("grains", GRAIN_ORDER):
            raise ValueError(f"KPI {kpi_id!r} has no grain {grain!r}; it has: {', '.join(kpi.get('grains', []))}")
        dims = kpi.get("dimensions", [])
        if dimension is not None and dimension not in dims:
            raise ValueError(f"KPI {kpi_id!r} has no dimension {dimension!r}; it has: {', '.join(dims) or 'none'}")
        con = duckdb.connect()
        try:
            try:
                relation = delta_relation_sql(con, kpi["gold_uri"], storage_options=self.storage_options)
            except TableNotFoundError:
                return {}
            others = [d for d in dims if d != dimension]
            where = ["grain = ?"] + [f'"{d}" IS NULL' for d in others]
            where.append(f'"{dimension}" IS NOT NULL' if dimension else "true")
            key = f'"{dimension}"' if dimension else "NULL"
            rows = con.execute(
                f"SELECT {key} AS series, period, value FROM {relation} WHERE {' AND '.join(where)} ORDER BY 1, 2",
                [grain],
            ).fetchall()
        finally:
            con.close()
        series: dict[str | None, list[Point]] = {}
        for name, period, value in rows:
            series.setdefault(name, []).append(Point(period, value))
        return series

    def summary(self, kpi_id: str, grain: str | None = None) -> dict[str, Any]:
        """Definition + latest total value against target + trend over the last periods."""
        kpi = self.definition(kpi_id)
        grain = grain or display_grain(kpi)
        points = self.history(kpi_id, grain).get(None, [])
        latest = points[-1] if points else None
        recent = points[-TREND_POINTS:]
        return {
            **kpi,
            "grain": grain,
            "latest": {"period": latest.period.isoformat(), "value": latest.value} if latest else None,
            "state": status_against_target(
                latest.value if latest else None, kpi["direction"], kpi.get("target"), kpi.get("alert")
            ),
            "trend": trend_of(recent, kpi["direction"]),
            "recent": [{"period": p.period.isoformat(), "value": p.value} for p in recent],
        }

    def breakdown(self, kpi_id: str, dimension: str, grain: str | None = None) -> list[dict[str, Any]]:
        """One entry per value of a declared `dimension`: its latest value against target, trend and history.

        Raises ValueError naming the declared dimensions when `dimension` is not one of them."""
        kpi = self.definition(kpi_id)
        grain = grain or display_grain(kpi)
        slices = []
        for name, points in sorted(self.history(kpi_id, grain, dimension).items(), key=lambda s: str(s[0])):
            latest = points[-1] if points else None
            slices.append(
                {
                    dimension: name,
                    "latest": {"period": latest.period.isoformat(), "value": latest.value} if latest else None,
                    "state": status_against_target(
                        latest.value if latest else None, kpi["direction"], kpi.get("target"), kpi.get("alert")
                    ),
                    "trend": trend_of(points[-TREND_POINTS:], kpi["direction"]),
                    "history": [{"period": p.period.isoformat(), "value": p.value} for p in points],
                }
            )
        return slices

    def list(self, query: str | None = None) -> list[dict[str, Any]]:
        """Every KPI's summary, filtered by a search over id, label, description, owner, use case and tags."""
        items = []
        for kpi_id in self.ids():
            kpi = self._kpis[kpi_id]
            if query and not matches(kpi, query):
                continue
            items.append(self.summary(kpi_id))
        return items


def matches(kpi: dict[str, Any], query: str) -> bool:
    text = (
        " ".join(str(kpi.get(k, "")) for k in ("id", "label", "description", "owner", "usecase", "unit", "status"))
        + " "
        + " ".join(kpi.get("tags", []))
    )
    return all(word in text.lower() for word in query.lower().split())


def open_catalog(workspace_root: Path | None = None) -> KpiCatalog:
    return KpiCatalog.of(Workspace.open(workspace_root))
