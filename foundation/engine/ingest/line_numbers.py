"""`_line`: the physical line each CSV record starts on in its file (`line_numbers: true`).

DuckDB's CSV reader gives no line number. Read in file order, the records of a file come out in its line order, so a
per-file counter gives their rank; the lines DuckDB rejects are not in the stream (the reject tables give their line
numbers, known once the scan ends), and the first `skip_rows` lines and the header are not records. So a record's
line is the rank-th line after those that is not a rejected one. A load that finds rejects it did not know of is read
again knowing them (`LinesShifted`). Quoted line breaks and blank lines (which DuckDB skips) would shift the count:
a file whose line count is not `skip + header + records + rejected lines` is refused, never numbered wrongly.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foundation.engine.connectors.files import SOURCE_FILE_COLUMN
from foundation.engine.connectors.landing_sql import LINE_COLUMN

CHUNK_BYTES = 1 << 24


class LinesShifted(Exception):
    """The scan found rejected lines the numbering did not know: the load reads again, knowing them."""

    def __init__(self, rejected: dict[str, list[int]]) -> None:
        super().__init__("rejected lines shift the line numbers")
        self.rejected = rejected


class LineNumbersError(ValueError):
    """A file's lines are not one record each (quoted line breaks, blank lines): `_line` cannot be exact."""


def rejected_lines(rejects: list[dict[str, object]]) -> dict[str, list[int]]:
    """File -> the sorted line numbers DuckDB rejected (one per line)."""
    by_file: dict[str, set[int]] = {}
    for reject in rejects:
        by_file.setdefault(str(reject["file"]), set()).add(int(reject["line"]))  # type: ignore[call-overload]
    return {path: sorted(lines) for path, lines in by_file.items()}


def physical_lines(path: str) -> int:
    """The lines of a file (a last line without a line break counts), read in chunks; `.gz` decompressed."""
    count, last = 0, b"\n"
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as raw:
        while chunk := raw.read(CHUNK_BYTES):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


class LineNumbers:
    """Numbers the records of a load's stream, file by file; `one_file`: the file when batches carry no
    `_source_file` (a one-file load adds it as a constant later)."""

    def __init__(self, lines_before: int, rejected: Mapping[str, list[int]], one_file: str | None) -> None:
        self.first = lines_before + 1  # the line of a file's first possible record
        self.rejected = dict(rejected)
        self.one_file = one_file
        self.records: dict[str, int] = {}  # file -> records numbered so far

    def add(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """`batch` with `_line` (int64) appended."""
        lines = np.empty(batch.num_rows, dtype=np.int64)
        for path, start, stop in self._runs(batch):
            ranks = np.arange(self.records.get(path, 0), self.records.get(path, 0) + stop - start, dtype=np.int64)
            self.records[path] = self.records.get(path, 0) + stop - start
            lines[start:stop] = self._lines(path, ranks)
        return batch.append_column(pa.field(LINE_COLUMN, pa.int64()), pa.array(lines))

    def _runs(self, batch: pa.RecordBatch) -> list[tuple[str, int, int]]:
        """(file, start, stop) of each run of rows from one file, in order."""
        if self.one_file is not None or not batch.num_rows:
            return [(self.one_file or "", 0, batch.num_rows)] if batch.num_rows else []
        files = batch.column(SOURCE_FILE_COLUMN)
        changes = np.flatnonzero(pc.not_equal(files[1:], files[:-1]).to_numpy(zero_copy_only=False)) + 1
        bounds = [0, *changes.tolist(), batch.num_rows]
        return [(files[a].as_py(), a, b) for a, b in itertools.pairwise(bounds)]

    def _lines(self, path: str, ranks: np.ndarray) -> np.ndarray:
        """The rank-th line from `first` on that is not rejected, for each rank."""
        rejected = np.asarray(self.rejected.get(path, []), dtype=np.int64)
        # records before the i-th rejected line: nondecreasing, so a record's shift is a binary search
        before = rejected - self.first - np.arange(len(rejected), dtype=np.int64)
        return self.first + ranks + np.searchsorted(before, ranks, side="right")

    def finish(self, rejects: list[dict[str, object]], paths: list[str]) -> None:
        """The scan ended: read again if it rejected lines not known (`LinesShifted`); refuse a file whose lines are
        not one record each."""
        found = rejected_lines(rejects)
        if found != {p: lines for p, lines in self.rejected.items() if lines}:
            raise LinesShifted(found)
        for path in paths:
            expected = self.first - 1 + self.records.get(path, 0) + len(found.get(path, []))
            counted = physical_lines(path)
            if counted != expected:
                raise LineNumbersError(
                    f"{path}: line_numbers: the file has {counted} lines but {expected - self.first + 1} records and "
                    f"{self.first - 1} skipped/header lines: a quoted value spans lines, or blank lines were "
                    "skipped, so `_line` cannot be the exact line of each record. Remove the blank lines or the "
                    "line breaks inside values, or turn line_numbers off."
                )
