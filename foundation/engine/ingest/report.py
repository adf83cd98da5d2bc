"""What one load did, in numbers that must reconcile."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LoadReport:
    source: str  # <usecase>/<source>
    load_id: str
    mode: str
    status: str = "landed"  # landed | nothing_new | failed
    files_total: int = 0
    files_loaded: int = 0
    rows_read: int = 0
    rows_landed: int = 0  # valid rows written (inserted or updated)
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_quarantined: int = 0
    rows_dropped: int = 0  # invalid rows dropped with a count (on_invalid_rows: drop-with-count)
    rows_stale: int = 0  # at or below the incremental cursor: already landed earlier
    rows_superseded: int = 0  # merge: older rows of a key that a newer row of the same load replaced
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the process during the load, all threads (steadier than wall on a busy box)
    delta_version: int | None = None
    quarantine_version: int | None = None
    schema: list[tuple[str, str]] = field(default_factory=list)
    invalid_reasons: dict[str, int] = field(default_factory=dict)  # reason (without values) -> rows
    rows_total: int | None = None  # rows in the table after the load
    preview: list[dict[str, Any]] = field(default_factory=list)  # first landed rows
    checks: list[dict[str, Any]] = field(default_factory=list)  # quality outcomes (CheckOutcome.to_dict())
    error: str | None = None
    notes: dict[str, int | str] = field(default_factory=dict)  # staged extracts: origin, pages fetched, retries...

    @property
    def reconciles(self) -> bool:
        accounted = (
            self.rows_landed + self.rows_quarantined + self.rows_dropped + self.rows_stale + self.rows_superseded
        )
        return self.rows_read == accounted

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadReport:
        """The inverse of `to_dict` (a report that travelled as JSON: the Dagster run's result)."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["schema"] = [(c["name"], c["type"]) for c in data.get("schema", [])]
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reconciles"] = self.reconciles
        data["schema"] = [{"name": n, "type": t} for n, t in self.schema]
        return data
