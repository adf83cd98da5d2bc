"""Each batch of a load's landing stream split into the rows to land and the rows to quarantine, counted so that
`read = landed + quarantined + dropped + stale + superseded` holds; the source's limits on invalid rows enforced.
"""

from __future__ import annotations

import struct
from collections import Counter
from datetime import UTC
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from foundation.engine.connectors.files import SOURCE_FILE_COLUMN
from foundation.engine.ingest.line_numbers import LineNumbers
from foundation.engine.ingest.lineage import ConstantLineage
from foundation.engine.ingest.quarantine import reject_records, typing_records
from foundation.engine.ingest.report import LoadReport
from foundation.engine.quality.gate import QualityGate
from foundation.engine.quality.row_rules import SqlRowRules
from foundation.specs.source import SourceSpec


class InvalidRowsError(ValueError):
    """A load refused because of invalid rows (on_invalid_rows: fail, or above max_invalid_percent)."""


def _text_scalar(text: str) -> pa.Scalar:
    """`pa.scalar(text)` built from bytes: pyarrow converts a Python object through its pandas shim, whose first
    use imports pandas (0.2-0.7 s here, before the first row); nothing else on a clean load's path needs it."""
    data = text.encode()
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(data)))
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)])[0]


OK, INVALID, STALE = _text_scalar("ok"), _text_scalar("invalid"), _text_scalar("stale")


def preview(batch: pa.RecordBatch) -> list[dict[str, object]]:
    """The first rows as JSON-friendly values. Time-zoned timestamps are read as UTC wall times: pyarrow converts
    them to Python through pandas, which a load has no other use for."""
    zoned = {f.name: f.type for f in batch.schema if pa.types.is_timestamp(f.type) and f.type.tz}
    plain = batch.select([n for n in batch.schema.names if n not in zoned]).to_pylist()
    utc = {name: batch.column(name).cast(pa.timestamp(kind.unit)).to_pylist() for name, kind in zoned.items()}
    rows = []
    for i, row in enumerate(plain):
        values = {**row, **{name: None if v[i] is None else v[i].replace(tzinfo=UTC) for name, v in utc.items()}}
        rows.append({k: (v if isinstance(v, int | float | str | None) else str(v)) for k, v in values.items()})
    return [{name: row[name] for name in batch.schema.names} for row in rows]


def reason_kind(reason: str) -> str:
    """Group reasons without their values: `temp: cannot read 'ERR' as double` -> `temp: cannot read as double`."""
    parts = []
    for part in reason.split("; "):
        if "cannot read" in part:
            column, expected = part.split(":", 1)[0], part.rsplit("'", 1)[-1]
            parts.append(f"{column}: cannot read{expected}")
        else:
            parts.append(part)
    return "; ".join(parts)


class RowSplitter:
    """Splits the landing stream's batches; the rows not landed are kept as quarantine records (few: bounded by
    the rules). Counts go to `report` as they are known."""

    def __init__(
        self,
        source_key: str,
        spec: SourceSpec,
        report: LoadReport,
        gate: QualityGate,
        in_sql: SqlRowRules,
        lineage: ConstantLineage,
        landed_schema: pa.Schema,
        lines: LineNumbers | None = None,
    ) -> None:
        self.source_key, self.spec, self.report, self.lines = source_key, spec, report, lines
        self.gate, self.in_sql, self.lineage, self.landed_schema = gate, in_sql, lineage, landed_schema
        self.streamed = [n for n in landed_schema.names if n not in lineage.constant_columns]
        self.quarantined: list[dict[str, Any]] = []
        self.reasons: Counter[str] = Counter()
        self.parse_failures = 0

    def split(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The rows of `batch` to land, with their lineage; the others are counted and kept as records."""
        if self.lines is not None:  # every row read is numbered, landed or not
            batch = self.lines.add(batch)
        report, status = self.report, batch.column("_status")
        report.rows_read += batch.num_rows
        if "_superseded" in batch.schema.names:  # a merge load's
            superseded = int(pc.sum(batch.column("_superseded")).as_py() or 0)
            report.rows_superseded += superseded
            report.rows_read += superseded  # removed by the SQL, but read from the files
        every_row_ok = self.in_sql.every_row_ok(batch)  # the usual batch: no string compare, no filter (no copy)
        if not every_row_ok:
            self._typing_failures(batch.filter(pc.equal(status, INVALID)))
            report.rows_stale += int(pc.sum(pc.equal(status, STALE)).as_py() or 0)
        ok = batch if every_row_ok else batch.filter(pc.equal(status, OK))
        ok = self.lineage.add(ok.select([*self.streamed, *self.in_sql.columns]), self.landed_schema)
        ok, failed = self.gate.screen(ok)
        if failed:
            self._refuse_if_fail(str(failed[0]["_invalid_reason"]), None)
            self.reasons.update(str(r["_rule"]) for r in failed)
            self.quarantined.extend(failed)
        report.rows_landed += ok.num_rows
        if not report.preview and ok.num_rows:
            report.preview = preview(ok.slice(0, 5))
        return ok

    def _typing_failures(self, invalid: pa.RecordBatch) -> None:
        if not invalid.num_rows:
            return
        invalid = self.lineage.with_source_file(invalid)
        self._refuse_if_fail(invalid.column("_invalid_reason")[0].as_py(), invalid)
        self.reasons.update(reason_kind(r) for r in invalid.column("_invalid_reason").to_pylist())
        self.quarantined.extend(typing_records(invalid))
        self.parse_failures += invalid.num_rows

    def finish(self, rejects: list[dict[str, Any]]) -> None:
        """The scan is complete (DuckDB's CSV rejects are known): refuse the load if its invalid rows are too many,
        or if an error load rule says so; before anything is committed."""
        self.report.rows_read += len(rejects)
        self.reasons.update(str(reject["error_type"]) for reject in rejects)
        self.quarantined.extend(reject_records(rejects))
        self.parse_failures += len(rejects)
        invalid_rows, rows_read = len(self.quarantined), self.report.rows_read
        if invalid_rows and self.spec.on_invalid_rows == "fail":
            raise InvalidRowsError(self._summary(invalid_rows))
        if rows_read and 100.0 * invalid_rows / rows_read > self.spec.max_invalid_percent:
            raise InvalidRowsError(
                f"{invalid_rows} of {rows_read} rows are invalid, above max_invalid_percent "
                f"{self.spec.max_invalid_percent}: nothing was landed. " + self._summary(invalid_rows)
            )
        samples = [str(r["_invalid_reason"]) for r in self.quarantined if r["_rule"] in ("type", "parse")][:5]
        self.gate.finish_load(self.parse_failures, samples)  # raises if an error load rule refuses the load

    def _refuse_if_fail(self, reason: str, invalid: pa.RecordBatch | None) -> None:
        if self.spec.on_invalid_rows == "fail":
            where = f" in {invalid.column(SOURCE_FILE_COLUMN)[0].as_py()}" if invalid is not None else ""
            raise InvalidRowsError(
                f"{self.source_key}: invalid row{where}: {reason}. "
                "on_invalid_rows is 'fail', so nothing was landed (use 'quarantine' to land the valid rows)."
            )

    def _summary(self, count: int) -> str:
        top = ", ".join(f"{reason} ({n})" for reason, n in self.reasons.most_common(5))
        return f"{self.source_key}: {count} invalid rows: {top}"
