"""Run one load of one source: files -> DuckDB (typed, flagged) -> bronze Delta + quarantine, crash-safe.

Order of writes, so that a crash at any point (kill -9 included) loses and duplicates no row:
1. the invalid rows, to a pending file named after the load id (foundation/engine/ingest/pending_quarantine.py);
2. the bronze commit, data and load state together: the load's commit point;
3. the pending rows appended to the quarantine table (commit metadata `foundation.load_id`), then the file removed.
A crash before 2 leaves the previous bronze version and state, so the next run reads the same input again and drops
the pending file; a crash after 2 leaves the file, and the next run appends it unless the quarantine has that load.
"""

from __future__ import annotations

import copy
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.connectors.files import SOURCE_FILE_COLUMN, csv_rejects
from foundation.engine.connectors.landing_sql import (
    INTERNAL_COLUMNS,
    LINE_COLUMN,
    LoadContext,
    compile_landing_sql,
    compile_newest_cursor_sql,
    declared_raw_text_columns,
    declared_reader_types,
    plan_columns,
)
from foundation.engine.connectors.staging import is_staged
from foundation.engine.ingest.crash_points import crash_point
from foundation.engine.ingest.inputs import LoadInputs, files_to_load, stage, state_key
from foundation.engine.ingest.line_numbers import LineNumbers, LinesShifted
from foundation.engine.ingest.lineage import ConstantLineage
from foundation.engine.ingest.pending_quarantine import PendingQuarantine
from foundation.engine.ingest.quarantine import quarantine_table
from foundation.engine.ingest.quarantine_writes import QuarantineWriteError, settle_pending, write_quarantine
from foundation.engine.ingest.report import LoadReport
from foundation.engine.ingest.row_split import InvalidRowsError, RowSplitter
from foundation.engine.lakehouse.bronze import BronzeTable, LoadState, WriteResult
from foundation.engine.lakehouse.partitions import PartitionWindow, partition_landing_sql, replace_partition
from foundation.engine.quality.checks import declared_checks
from foundation.engine.quality.gate import QualityGate, nothing_new_outcomes
from foundation.engine.quality.outcomes import CheckOutcome
from foundation.engine.quality.results import record_outcomes
from foundation.engine.quality.row_rules import SqlRowRules, compile_sql_row_rules
from foundation.specs.source import CsvExtract, DeltaExtract

__all__ = ["InvalidRowsError", "QuarantineWriteError", "SourceLoader", "ingest_source"]

ProgressCallback = Callable[[int], None]  # called with the rows read so far


def new_load_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _connect(workspace: Workspace, file_order: bool = False) -> duckdb.DuckDBPyConnection:
    """`file_order`: rows come out in file order (line numbers count them; it costs nothing measurable)."""
    settings = workspace.settings.duckdb
    config: dict[str, str | int | bool] = {
        "preserve_insertion_order": file_order,
        "memory_limit": settings.memory_limit,
    }
    if settings.threads:
        config["threads"] = settings.threads
    con = duckdb.connect(config=config)
    spill = workspace.state_dir / "tmp"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = '{spill}'")
    con.execute("SET enable_progress_bar = false")  # DuckDB prints it on stdout after 2 s: it breaks `ingest --json`
    return con


@dataclass
class LandingStream:
    """The typed, flagged rows of a load as DuckDB streams them, and what the load records with them."""

    reader: pa.RecordBatchReader
    in_sql: SqlRowRules  # the row rules DuckDB states inside the landing query
    lineage: ConstantLineage  # the lineage columns added to each batch in Arrow, not by DuckDB
    lines: LineNumbers | None  # `_line`, added to each batch in Arrow (line_numbers: true)
    landed_schema: pa.Schema
    new_cursor: str | None


@dataclass
class LoadAttempt:
    """One load's result: its report, or the error that stopped it; and the rule outcomes (for Dagster's checks)."""

    report: LoadReport | None
    error: Exception | None
    outcomes: list[CheckOutcome]

    def report_or_raise(self) -> LoadReport:
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report


class ReadAgainAsText(Exception):
    """The CSV reader refused a value of a column it typed: the load reads the files again as text, so that the
    row is flagged and quarantined with its reason as always."""


class SourceLoader:
    """One load of one source. `run()` returns the report or raises, leaving the lakehouse unchanged."""

    def __init__(
        self,
        workspace: Workspace,
        source: SourceRef,
        progress: ProgressCallback | None = None,
        partition: PartitionWindow | None = None,
    ) -> None:
        self.workspace = workspace
        self.partition = partition  # a partitioned source's load reads and replaces this window only
        self.source = source
        self.spec = source.spec
        self.progress = progress
        options = workspace.settings.lakehouse.storage_options
        self.bronze = BronzeTable(workspace.bronze_uri(source.usecase, source.name), options)
        self.quarantine = BronzeTable(workspace.quarantine_uri(source.usecase, source.name), options)
        self.pending = PendingQuarantine(self.quarantine.uri, options)
        self.gate: QualityGate | None = None
        self.outcomes: list[CheckOutcome] = []  # when no gate ran (nothing new to load)

    def run(self) -> LoadReport:
        """The load's report; raises what stopped the load."""
        return self.attempt().report_or_raise()

    def attempt(self) -> LoadAttempt:
        """The load as a value: its report, or the error that stopped it, and what the rules concluded either way."""
        started, cpu_started = time.perf_counter(), time.process_time()
        now = datetime.now(UTC)
        report = LoadReport(source=self.source.key, load_id=new_load_id(now), mode=self.spec.load.mode)
        try:
            self._run(report, now)
        except Exception as exc:
            # What the rules concluded before the failure is history too (a refused load is a failed check).
            outcomes = self.gate.outcomes if self.gate is not None else []
            outcomes = _dedupe(outcomes + list(getattr(exc, "outcomes", [])))
            record_outcomes(self.workspace, self.source.key, report.load_id, now, outcomes)
            return LoadAttempt(report=None, error=exc, outcomes=outcomes)
        # Nothing new: only the re-measured table rules are history; the last real load's row and load results
        # stay the latest (Dagster still gets an answer for every check). A source that never landed has none:
        # its failed load rules (min_rows) are history too.
        outcomes = self.gate.outcomes if self.gate else [o for o in self.outcomes if o.stage == "table" or not o.passed]
        record_outcomes(self.workspace, self.source.key, report.load_id, now, outcomes)
        report.seconds = time.perf_counter() - started
        report.cpu_seconds = time.process_time() - cpu_started
        return LoadAttempt(report=report, error=None, outcomes=outcomes)

    def _run(self, report: LoadReport, now: datetime) -> None:
        self.workspace.refuse_paths_outside_roots(self.source)  # again at run time: ${VAR}s, symlinks since check
        settled = settle_pending(self.bronze, self.quarantine, self.pending)
        state = self.bronze.state()
        if is_staged(self.spec.extract):
            # Fetched into a per-load folder, then read like files; the folder goes whatever happens.
            folder = f"{self.source.usecase}__{self.source.name}-{report.load_id}"
            staging_dir = self.workspace.state_dir / "staging" / folder
            staging_dir.mkdir(parents=True, exist_ok=True)
            try:
                inputs = stage(self.workspace, self.source, state, staging_dir)
                staged = inputs.staged
                assert staged is not None
                report.notes = {"origin": staged.origin, "records": staged.rows, **staged.notes}
                self._load_inputs(inputs, report, now, state)
            finally:
                shutil.rmtree(staging_dir, ignore_errors=True)
        else:
            inputs = files_to_load(self.workspace, self.source, state, self.partition)
            self._load_inputs(inputs, report, now, state)
        if settled is not None:
            report.notes["quarantine_settled"] = settled

    def _load_inputs(self, inputs: LoadInputs, report: LoadReport, now: datetime, state: LoadState) -> None:
        report.files_total, report.files_loaded = inputs.files_total, len(inputs.paths)
        if not inputs.paths and not isinstance(self.spec.extract, DeltaExtract):
            report.status = "nothing_new"
            report.delta_version = self.bronze.version()
            report.rows_total = self.bronze.row_count()
            self.outcomes = nothing_new_outcomes(self.workspace, self.source, now, self.bronze.last_load_at())
            report.checks = [o.to_dict() for o in self.outcomes]
            return
        typed = self._reader_typing()
        before = copy.deepcopy(report)
        rejected: dict[str, list[int]] = {}
        notes: dict[str, str] = {}
        for attempt in range(3):  # typed, as text, knowing the rejected lines: nothing is committed before the last
            try:
                self._load_with(inputs, state, report, now, typed, rejected)
                report.notes.update(notes)
                return
            except (ReadAgainAsText, InvalidRowsError):
                if typed is None:
                    raise
                # Nothing was committed. Read as text, every row is flagged where it is: the quarantine, and a
                # refusal's message (the first invalid row, the counts), say what they say without the typed reader.
                typed = None
                notes["csv_read_again_as_text"] = "the CSV reader refused a value of a column it typed"
            except LinesShifted as shifted:
                if attempt == 2:
                    raise
                rejected = shifted.rejected  # the records after a rejected line are one line further
            vars(report).update(vars(copy.deepcopy(before)))

    def _reader_typing(self) -> dict[str, str] | None:
        """The CSV columns the reader types itself (the fast path), None when it types none."""
        if not isinstance(self.spec.extract, CsvExtract):
            return None
        types = declared_reader_types(self.spec)
        return types if any(kind != "VARCHAR" for kind in types.values()) else None

    def _load_with(
        self,
        inputs: LoadInputs,
        state: LoadState,
        report: LoadReport,
        now: datetime,
        typed: dict[str, str] | None,
        rejected: dict[str, list[int]],
    ) -> None:
        con = _connect(self.workspace, file_order=self.spec.line_numbers)
        try:
            self._load(con, inputs, state, report, now, typed, rejected)
        finally:
            con.close()

    def _landing_stream(
        self,
        con: duckdb.DuckDBPyConnection,
        inputs: LoadInputs,
        state: LoadState,
        context: LoadContext,
        typed: dict[str, str] | None,
        rejected: dict[str, list[int]],
    ) -> LandingStream:
        """Plan the columns from the raw schema, compile the landing SQL and start streaming it."""
        text = declared_raw_text_columns(self.spec) if isinstance(self.spec.extract, CsvExtract) else []
        relation = inputs.relation(con, self.source, typed or dict.fromkeys(text, "VARCHAR"))
        raw_schema = [(row[0], row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
        plans = plan_columns(self.spec, raw_schema)
        one_file = self._one_source_file(inputs)
        sql = compile_landing_sql(
            self.spec, plans, relation, context, constant_lineage=False, source_file_in_sql=one_file is None
        )
        if self.partition is not None:
            sql = partition_landing_sql(self.spec, sql, self.partition, SOURCE_FILE_COLUMN, inputs.file_times)
        new_cursor = state.cursor
        if self.spec.load.incremental and self.spec.load.incremental.cursor:
            # The state goes into the commit, whose metadata deltalake takes when the write starts (write_deltalake
            # and merge convert CommitProperties before reading the stream; a second commit for the state would not
            # be atomic with the data): find the newest cursor value to land first, with a query that only types
            # and filters. Rows at or below the last cursor are stale, so the cursor only grows.
            newest = con.execute(compile_newest_cursor_sql(self.spec, plans, relation, context)).fetchall()[0][0]
            if newest is not None:
                new_cursor = newest.isoformat() if isinstance(newest, datetime) else str(newest)
        # The row rules DuckDB can state run inside the landing query; pandera runs the others on each batch.
        in_sql = compile_sql_row_rules(declared_checks(self.spec), {p.name: p.landed_type for p in plans})
        reader = con.sql(in_sql.landing_sql(sql)).to_arrow_reader(self.workspace.settings.ingest.batch_rows)
        streamed = [f for f in reader.schema if f.name not in (*INTERNAL_COLUMNS, *in_sql.columns)]
        lineage = ConstantLineage(context.load_id, context.loaded_at, one_file)
        schema, lines = lineage.schema(streamed), None
        if self.spec.line_numbers:
            assert isinstance(self.spec.extract, CsvExtract)  # the spec refuses line_numbers elsewhere
            lines = LineNumbers(self.spec.extract.skip_rows + self.spec.extract.header, rejected, one_file)
            schema = schema.insert(schema.get_field_index(SOURCE_FILE_COLUMN) + 1, pa.field(LINE_COLUMN, pa.int64()))
        return LandingStream(reader, in_sql, lineage, lines, schema, new_cursor)

    def _one_source_file(self, inputs: LoadInputs) -> str | None:
        """The `_source_file` of every row when it is one value (one file, or a staged extract's origin), so that
        it is added in Arrow instead of copied row by row by DuckDB; None when the SQL must carry it (several files,
        a Delta source, a merge's deduplication, a partition's file times)."""
        if self.spec.load.mode == "merge" or self.partition is not None:
            return None
        if inputs.staged is not None:
            return inputs.staged.origin
        if len(inputs.paths) == 1 and not isinstance(self.spec.extract, DeltaExtract):
            return inputs.paths[0]
        return None

    def _open_gate(self, stream: LandingStream) -> QualityGate:
        """The quality gate of this load; a frozen schema contract refuses a changed schema before a row is read."""
        try:
            previous_rows = self.bronze.previous_load_rows()
            gate = QualityGate(
                self.workspace, self.source, stream.landed_schema, self.bronze.schema(), previous_rows, stream.in_sql
            )
            self.gate = gate
            gate.check_schema()
        except BaseException:
            stream.reader.close()
            raise
        return gate

    def _load(
        self,
        con: duckdb.DuckDBPyConnection,
        inputs: LoadInputs,
        state: LoadState,
        report: LoadReport,
        now: datetime,
        typed: dict[str, str] | None,
        rejected: dict[str, list[int]],
    ) -> None:
        context = LoadContext(
            load_id=report.load_id,
            loaded_at=now,
            last_cursor=state.cursor,
            pii_salt=self.workspace.settings.ingest.pii_salt,
        )
        stream = self._landing_stream(con, inputs, state, context, typed, rejected)
        report.schema = [(f.name, str(f.type)) for f in stream.landed_schema]
        gate = self._open_gate(stream)
        splitter = RowSplitter(
            self.source.key, self.spec, report, gate, stream.in_sql, stream.lineage, stream.landed_schema, stream.lines
        )
        pending_rows: list[pa.Table] = []  # the quarantine rows written to the pending file, once known

        def landed_batches() -> Iterator[pa.RecordBatch]:
            for i, batch in enumerate(stream.reader):
                ok = splitter.split(batch)
                if self.progress:
                    self.progress(report.rows_read)
                yield ok
                if i == 0:  # the writer asked for the next batch: it took this one
                    crash_point("after_first_batch")
            rejects = csv_rejects(con)
            if typed and any("CAST" in str(reject["error_type"]) for reject in rejects):
                raise ReadAgainAsText()  # before anything is committed
            if stream.lines is not None:
                stream.lines.finish(rejects, inputs.paths)  # may read again, or refuse: before the commit
            splitter.finish(rejects)  # the scan is complete: refuse now, before anything is committed
            pending_rows.extend(self._write_pending(report, splitter.quarantined, now))

        new_state = LoadState(files=dict(state.files), cursor=stream.new_cursor)
        for f in inputs.files:
            new_state.files[state_key(self.workspace, f.path)] = f.fingerprint
        result = self._commit(landed_batches(), stream, new_state, report.load_id)
        crash_point("after_bronze_commit")
        report.delta_version = result.version
        report.rows_total = self.bronze.row_count()
        report.rows_inserted, report.rows_updated = result.rows_inserted, result.rows_updated
        report.invalid_reasons = dict(splitter.reasons)
        if self.spec.on_invalid_rows == "drop-with-count":
            report.rows_dropped = len(splitter.quarantined)
        elif pending_rows:
            self._write_quarantine(report, pending_rows[0])
        crash_point("after_load")
        detail = (
            f"read {report.rows_read} = landed {report.rows_landed} + quarantined {report.rows_quarantined} + "
            f"dropped {report.rows_dropped} + stale {report.rows_stale} + superseded {report.rows_superseded}"
        )
        report.checks = [o.to_dict() for o in gate.after_commit(report.reconciles, detail, now)]

    def _write_pending(self, report: LoadReport, quarantined: list[dict[str, object]], now: datetime) -> list[pa.Table]:
        """Before the writer commits (it does once the stream ends): the invalid rows must survive a crash. A
        partition load writes a pending file even without invalid rows: it removes the partition's earlier ones."""
        crash_point("before_pending_quarantine")
        written = []
        if self.spec.on_invalid_rows != "drop-with-count" and (quarantined or self.partition is not None):
            rows = quarantine_table(quarantined, report.load_id, now)
            self.pending.write(report.load_id, rows, self.partition)
            written.append(rows)
        crash_point("after_pending_quarantine")
        return written

    def _commit(
        self, batches: Iterator[pa.RecordBatch], stream: LandingStream, state: LoadState, load_id: str
    ) -> WriteResult:
        """The bronze commit, data and load state together: the load's commit point."""
        stream_errors: list[BaseException] = []

        def recorded() -> Iterator[pa.RecordBatch]:
            try:
                yield from batches
            except Exception as exc:
                stream_errors.append(exc)
                raise

        data = pa.RecordBatchReader.from_batches(stream.landed_schema, recorded())
        metadata = {"foundation.load_id": load_id}
        try:
            if self.partition is not None:
                return replace_partition(self.bronze, data, self.spec, self.partition, state, metadata)
            return self.bronze.write(
                data, self.spec.load.mode, state, primary_key=self.spec.load.primary_key, metadata=metadata
            )
        except Exception:
            self.pending.remove(load_id)  # no commit: the next run reads these rows again
            # deltalake wraps an error raised while it reads the stream (InvalidRowsError...) in a DeltaError
            if stream_errors:
                raise stream_errors[0] from None
            raise
        finally:
            # Release DuckDB's stream now: left to the garbage collector it may outlive its connection.
            data.close()
            stream.reader.close()

    def _write_quarantine(self, report: LoadReport, rows: pa.Table) -> None:
        """After the bronze commit: the load is made, so a failure here is rolled forward by the next run."""
        try:
            report.quarantine_version = write_quarantine(self.quarantine, rows, report.load_id, self.partition)
        except Exception as exc:
            raise QuarantineWriteError(
                f"{self.source.key}: landed {report.rows_landed} rows (bronze version {report.delta_version}), but "
                f"the quarantine write failed: {exc}. Its {rows.num_rows} rows are kept in "
                f"{self.pending.where(report.load_id)}; the next `foundation ingest` of this source appends them."
            ) from exc
        report.rows_quarantined = rows.num_rows
        crash_point("after_quarantine_commit")
        self.pending.remove(report.load_id)


def _dedupe(outcomes: list[CheckOutcome]) -> list[CheckOutcome]:
    seen: dict[str, CheckOutcome] = {}
    for outcome in outcomes:
        seen[outcome.check] = outcome
    return list(seen.values())


def ingest_source(
    workspace: Workspace,
    source: SourceRef,
    progress: ProgressCallback | None = None,
    partition: PartitionWindow | None = None,
) -> LoadReport:
    """Load a source; `partition`: only that window of a partitioned source, replacing it. Raises what stopped it."""
    return attempt_source(workspace, source, progress, partition).report_or_raise()


def attempt_source(
    workspace: Workspace,
    source: SourceRef,
    progress: ProgressCallback | None = None,
    partition: PartitionWindow | None = None,
) -> LoadAttempt:
    """Load a source and return the attempt, failed or not (with what its rules concluded)."""
    if partition is None and source.spec.partitions is not None:
        raise ValueError(
            f"{source.key} is partitioned by {source.spec.partitions.by} partitions: load a partition or a range "
            f"of them with `foundation backfill {source.key} --from DATE --to DATE` (or from the Dagster UI)"
        )
    return SourceLoader(workspace, source, progress, partition).attempt()
