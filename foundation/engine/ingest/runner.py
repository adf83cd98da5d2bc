"""Run one load of one source: files -> DuckDB (typed, flagged) -> bronze Delta + quarantine, crash-safe.

Order of writes, so that a crash at any point (kill -9 included) loses and duplicates no row:
1. the invalid rows, to a pending file named after the load id (foundation/engine/ingest/pending_quarantine.py);
2. the bronze commit, data and load state together: the load's commit point;
3. the pending rows appended to the quarantine table (commit metadata `foundation.load_id`), then the file removed.
A crash before 2 leaves the previous bronze version and state, so the next run reads the same input again and drops
the pending file; a crash after 2 leaves the file, and the next run appends it unless the quarantine has that load.
"""

from __future__ import annotations

import shutil
import struct
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.connectors.files import (
    SOURCE_FILE_COLUMN,
    SourceFile,
    check_not_all_blank,
    csv_rejects,
    delta_reader_sql,
    reader_sql,
    resolve_files,
)
from foundation.engine.connectors.landing_sql import (
    INTERNAL_COLUMNS,
    LoadContext,
    compile_landing_sql,
    compile_newest_cursor_sql,
    declared_raw_text_columns,
    plan_columns,
)
from foundation.engine.connectors.staging import (
    StagedExtract,
    StageRequest,
    is_staged,
    stage_extract,
    staged_reader_sql,
)
from foundation.engine.ingest.crash_points import crash_point
from foundation.engine.ingest.lineage import ConstantLineage
from foundation.engine.ingest.pending_quarantine import PendingQuarantine
from foundation.engine.ingest.quarantine import quarantine_table, reject_records, typing_records
from foundation.engine.ingest.report import LoadReport
from foundation.engine.lakehouse.bronze import BronzeTable, LoadState
from foundation.engine.lakehouse.partitions import (
    PartitionWindow,
    files_in_window,
    partition_landing_sql,
    replace_partition,
    replace_quarantine_partition,
)
from foundation.engine.quality.checks import declared_checks
from foundation.engine.quality.gate import QualityGate, nothing_new_outcomes
from foundation.engine.quality.outcomes import CheckOutcome
from foundation.engine.quality.results import record_outcomes
from foundation.engine.quality.row_rules import compile_sql_row_rules
from foundation.specs.source import CsvExtract, DeltaExtract

ProgressCallback = Callable[[int], None]  # called with the rows read so far


class InvalidRowsError(ValueError):
    """A load refused because of invalid rows (on_invalid_rows: fail, or above max_invalid_percent)."""


class QuarantineWriteError(RuntimeError):
    """The bronze commit was made but the quarantine append failed: its rows wait in the pending file."""


def new_load_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _text_scalar(text: str) -> pa.Scalar:
    """`pa.scalar(text)` built from bytes: pyarrow converts a Python object through its pandas shim, whose first
    use imports pandas (0.2-0.7 s here, before the first row); nothing else on a clean load's path needs it."""
    data = text.encode()
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(data)))
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)])[0]


OK, INVALID, STALE = _text_scalar("ok"), _text_scalar("invalid"), _text_scalar("stale")


def _preview(batch: pa.RecordBatch) -> list[dict[str, object]]:
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


def _reason_kind(reason: str) -> str:
    """Group reasons without their values: `temp: cannot read 'ERR' as double` -> `temp: cannot read as double`."""
    parts = []
    for part in reason.split("; "):
        if "cannot read" in part:
            column, expected = part.split(":", 1)[0], part.rsplit("'", 1)[-1]
            parts.append(f"{column}: cannot read{expected}")
        else:
            parts.append(part)
    return "; ".join(parts)


def _connect(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    settings = workspace.settings.duckdb
    config: dict[str, str | int | bool] = {"preserve_insertion_order": False, "memory_limit": settings.memory_limit}
    if settings.threads:
        config["threads"] = settings.threads
    con = duckdb.connect(config=config)
    spill = workspace.state_dir / "tmp"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = '{spill}'")
    con.execute("SET enable_progress_bar = false")  # DuckDB prints it on stdout after 2 s: it breaks `ingest --json`
    return con


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
        self.file_times: dict[str, datetime] = {}  # file-name partitions: the time each file's name carries
        self.source = source
        self.spec = source.spec
        self.progress = progress
        options = workspace.settings.lakehouse.storage_options
        self.bronze = BronzeTable(workspace.bronze_uri(source.usecase, source.name), options)
        self.quarantine = BronzeTable(workspace.quarantine_uri(source.usecase, source.name), options)
        self.pending = PendingQuarantine(self.quarantine.uri, options)
        self.gate: QualityGate | None = None
        self.staged: StagedExtract | None = None  # a rest_api/sql/html_table extract, staged for this load
        self.outcomes: list[CheckOutcome] = []  # when no gate ran (nothing new to load)

    def run(self) -> LoadReport:
        started = time.perf_counter()
        now = datetime.now(UTC)
        report = LoadReport(source=self.source.key, load_id=new_load_id(now), mode=self.spec.load.mode)
        try:
            self._run(report, now)
        except Exception as exc:
            # What the rules concluded before the failure is history too (a refused load is a failed check).
            outcomes = self.gate.outcomes if self.gate is not None else []
            outcomes = _dedupe(outcomes + list(getattr(exc, "outcomes", [])))
            record_outcomes(self.workspace, self.source.key, report.load_id, now, outcomes)
            exc.foundation_outcomes = outcomes  # type: ignore[attr-defined]  # for the Dagster asset's checks
            raise
        # Nothing new: only the re-measured table rules are history; the last real load's row and load results
        # stay the latest (Dagster still gets an answer for every check). A source that never landed has none:
        # its failed load rules (min_rows) are history too.
        outcomes = self.gate.outcomes if self.gate else [o for o in self.outcomes if o.stage == "table" or not o.passed]
        record_outcomes(self.workspace, self.source.key, report.load_id, now, outcomes)
        report.seconds = time.perf_counter() - started
        return report

    def _run(self, report: LoadReport, now: datetime) -> None:
        self.workspace.refuse_paths_outside_roots(self.source)  # again at run time: ${VAR}s, symlinks since check
        settled = self._settle_pending()
        state = self.bronze.state()
        if is_staged(self.spec.extract):
            # Fetched into a per-load folder, then read like files; the folder goes whatever happens.
            staging_dir = (
                self.workspace.state_dir / "staging" / f"{self.source.usecase}__{self.source.name}-{report.load_id}"
            )
            staging_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._run_files(report, now, state, staging_dir)
            finally:
                shutil.rmtree(staging_dir, ignore_errors=True)
        else:
            self._run_files(report, now, state, None)
        if settled is not None:
            report.notes["quarantine_settled"] = settled

    def _settle_pending(self) -> int | None:
        """Finish what a crashed load left: its pending quarantine rows; returns the rows written (None: no load's).

        A load whose bronze commit was made owns its rows: they are written (appended, or replacing its partition's),
        unless the crash came after that write. A load that never committed recorded no state, so its input is
        read (and its invalid rows quarantined) again: its pending rows are dropped. Idempotent: a crash in here is
        settled by the next run.
        """
        self.pending.remove_partial()
        written = None
        for load_id in self.pending.load_ids():
            if self.bronze.has_load(load_id) and not self.quarantine.has_load(load_id):
                rows, partition = self.pending.read(load_id)
                write_quarantine(self.quarantine, rows, load_id, partition)
                written = (written or 0) + rows.num_rows
                crash_point("after_settle_quarantine_commit")
            self.pending.remove(load_id)
        return written

    def _stage(self, state: LoadState, staging_dir: Path, report: LoadReport) -> list[str]:
        request = StageRequest(
            workspace_root=self.workspace.root,
            source_key=self.source.key,
            extract=self.spec.extract,
            last_cursor=state.cursor,
            staging_dir=staging_dir,
            batch_rows=self.workspace.settings.ingest.batch_rows,
        )
        self.staged = stage_extract(request)
        crash_point("after_staging")
        report.notes = {"origin": self.staged.origin, "records": self.staged.rows, **self.staged.notes}
        report.files_total = report.files_loaded = len(self.staged.paths)
        return list(self.staged.paths)

    def _run_files(self, report: LoadReport, now: datetime, state: LoadState, staging_dir: Path | None) -> None:
        if staging_dir is not None:
            files: list[SourceFile] = []
            relation_files = self._stage(state, staging_dir, report)
        else:
            files, relation_files = self._files_to_load(state, report)
        if not relation_files and not isinstance(self.spec.extract, DeltaExtract):
            report.status = "nothing_new"
            report.delta_version = self.bronze.version()
            report.rows_total = self.bronze.row_count()
            self.outcomes = nothing_new_outcomes(self.workspace, self.source, now, self.bronze.last_load_at())
            report.checks = [o.to_dict() for o in self.outcomes]
            return
        con = _connect(self.workspace)
        try:
            self._load(con, files, relation_files, state, report, now)
        finally:
            con.close()

    def _state_key(self, path: str) -> str:
        """Files inside the workspace are remembered by relative path, so a moved workspace is not reloaded."""
        try:
            return str(Path(path).resolve().relative_to(self.workspace.root))
        except ValueError:
            return path

    def _files_to_load(self, state: LoadState, report: LoadReport) -> tuple[list[SourceFile], list[str]]:
        if isinstance(self.spec.extract, DeltaExtract):
            uri = self.workspace.resolve(self.spec.extract.path)
            report.files_total = report.files_loaded = 1
            return [], [uri]
        files = resolve_files(self.workspace.root, self.spec.extract)
        report.files_total = len(files)
        if self.partition is not None:
            self.file_times = files_in_window(self.spec, [f.path for f in files], self.partition)
            files = [f for f in files if f.path in self.file_times]
        skip_known = self.spec.load.mode == "append" or (
            self.spec.load.incremental is not None and self.spec.load.incremental.new_files_only
        )
        if skip_known:
            files = [f for f in files if state.files.get(self._state_key(f.path)) != f.fingerprint]
        report.files_loaded = len(files)
        if isinstance(self.spec.extract, CsvExtract):
            check_not_all_blank(files, self.workspace.root)
        return files, [f.path for f in files]

    def _relation(self, con: duckdb.DuckDBPyConnection, paths: list[str], text_columns: list[str]) -> str:
        extract = self.spec.extract
        if isinstance(extract, DeltaExtract):
            return delta_reader_sql(con, paths[0], extract)
        if self.staged is not None:
            return staged_reader_sql(self.staged)
        return reader_sql(extract, paths, text_columns)

    def _load(
        self,
        con: duckdb.DuckDBPyConnection,
        files: list[SourceFile],
        paths: list[str],
        state: LoadState,
        report: LoadReport,
        now: datetime,
    ) -> None:
        text_columns = declared_raw_text_columns(self.spec) if isinstance(self.spec.extract, CsvExtract) else []
        relation = self._relation(con, paths, text_columns)
        raw_schema = [(row[0], row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
        plans = plan_columns(self.spec, raw_schema)
        context = LoadContext(
            load_id=report.load_id,
            loaded_at=now,
            last_cursor=state.cursor,
            pii_salt=self.workspace.settings.ingest.pii_salt,
        )
        sql = compile_landing_sql(self.spec, plans, relation, context, constant_lineage=False)
        if self.partition is not None:
            sql = partition_landing_sql(self.spec, sql, self.partition, SOURCE_FILE_COLUMN, self.file_times)
        cursor = self.spec.load.incremental.cursor if self.spec.load.incremental else None
        new_cursor = state.cursor
        if cursor:
            # The state goes into the commit, whose metadata deltalake takes when the write starts (write_deltalake
            # and merge convert CommitProperties before reading the stream; a second commit for the state would not
            # be atomic with the data): find the newest cursor value to land first, with a query that only types
            # and filters. Rows at or below the last cursor are stale, so the cursor only grows.
            newest = con.execute(compile_newest_cursor_sql(self.spec, plans, relation, context)).fetchall()[0][0]
            if newest is not None:
                new_cursor = newest.isoformat() if isinstance(newest, datetime) else str(newest)
        # The row rules DuckDB can state run inside the landing query; pandera runs the others on each batch.
        in_sql = compile_sql_row_rules(declared_checks(self.spec), {p.name: p.landed_type for p in plans})
        stream = con.sql(in_sql.landing_sql(sql)).to_arrow_reader(self.workspace.settings.ingest.batch_rows)
        streamed = [f for f in stream.schema if f.name not in (*INTERNAL_COLUMNS, *in_sql.columns)]
        lineage = ConstantLineage(report.load_id, now)  # _load_id, _loaded_at: added to each batch, not by DuckDB
        landed_schema = lineage.schema(streamed)
        report.schema = [(f.name, str(f.type)) for f in landed_schema]
        try:
            self.gate = QualityGate(
                self.workspace,
                self.source,
                landed_schema,
                self.bronze.schema(),
                self.bronze.previous_load_rows(),
                in_sql,
            )
            self.gate.check_schema()  # before anything is read: a frozen contract refuses a changed schema
        except BaseException:
            stream.close()
            raise
        gate = self.gate
        quarantined: list[dict[str, object]] = []  # records of every row not landed (small: bounded by the rules)
        reasons: Counter[str] = Counter()
        parse_failures: list[int] = [0]
        pending_rows: list[pa.Table] = []  # the quarantine rows written to the pending file, once known

        def valid_batches() -> Iterator[pa.RecordBatch]:
            first = True
            for batch in stream:
                status = batch.column("_status")
                report.rows_read += batch.num_rows
                superseded = int(pc.sum(batch.column("_superseded")).as_py() or 0)
                report.rows_superseded += superseded
                report.rows_read += superseded  # removed by the SQL, but read from the files
                every_row_ok = in_sql.every_row_ok(batch)  # the usual batch: no string compare, no filter (no copy)
                ok_rows = None if every_row_ok else pc.equal(status, OK)
                invalid = batch.slice(0, 0) if every_row_ok else batch.filter(pc.equal(status, INVALID))
                if invalid.num_rows:
                    self._on_invalid(invalid.column("_invalid_reason")[0].as_py(), invalid)
                    reasons.update(_reason_kind(r) for r in invalid.column("_invalid_reason").to_pylist())
                    quarantined.extend(typing_records(invalid))
                    parse_failures[0] += invalid.num_rows
                if not every_row_ok:
                    report.rows_stale += int(pc.sum(pc.equal(status, STALE)).as_py() or 0)
                ok = batch if ok_rows is None else batch.filter(ok_rows)
                ok = lineage.add(ok.select([*(f.name for f in streamed), *in_sql.columns]), landed_schema)
                ok, failed = gate.screen(ok)
                if failed:
                    self._on_invalid(str(failed[0]["_invalid_reason"]), None)
                    reasons.update(str(r["_rule"]) for r in failed)
                    quarantined.extend(failed)
                report.rows_landed += ok.num_rows
                if not report.preview and ok.num_rows:
                    report.preview = _preview(ok.slice(0, 5))
                if self.progress:
                    self.progress(report.rows_read)
                yield ok
                if first:  # the writer asked for the next batch: it took this one
                    crash_point("after_first_batch")
                    first = False
            # The scan is complete: DuckDB's CSV rejects are known now, before anything is committed.
            rejects = csv_rejects(con)
            report.rows_read += len(rejects)
            reasons.update(str(reject["error_type"]) for reject in rejects)
            quarantined.extend(reject_records(rejects))
            parse_failures[0] += len(rejects)
            invalid_rows = len(quarantined)
            if invalid_rows and self.spec.on_invalid_rows == "fail":
                raise InvalidRowsError(self._invalid_summary(invalid_rows, reasons))
            if report.rows_read and 100.0 * invalid_rows / report.rows_read > self.spec.max_invalid_percent:
                raise InvalidRowsError(
                    f"{invalid_rows} of {report.rows_read} rows are invalid, above max_invalid_percent "
                    f"{self.spec.max_invalid_percent}: nothing was landed. "
                    + self._invalid_summary(invalid_rows, reasons)
                )
            samples = [str(r["_invalid_reason"]) for r in quarantined if r["_rule"] in ("type", "parse")][:5]
            gate.finish_load(parse_failures[0], samples)  # raises if an error load rule refuses the load
            # Before the writer commits (it does once this generator ends): the invalid rows must survive a crash.
            crash_point("before_pending_quarantine")
            # A partition load writes one even without invalid rows: it removes the partition's earlier ones.
            if self.spec.on_invalid_rows != "drop-with-count" and (quarantined or self.partition is not None):
                rows = quarantine_table(quarantined, report.load_id, now)
                self.pending.write(report.load_id, rows, self.partition)
                pending_rows.append(rows)
            crash_point("after_pending_quarantine")

        new_state = LoadState(files=dict(state.files), cursor=new_cursor)
        for f in files:
            new_state.files[self._state_key(f.path)] = f.fingerprint
        stream_errors: list[BaseException] = []

        def recorded(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            try:
                yield from batches
            except Exception as exc:
                stream_errors.append(exc)
                raise

        data = pa.RecordBatchReader.from_batches(landed_schema, recorded(valid_batches()))
        try:
            if self.partition is not None:
                result = replace_partition(
                    self.bronze, data, self.spec, self.partition, new_state, {"foundation.load_id": report.load_id}
                )
            else:
                result = self.bronze.write(
                    data,
                    self.spec.load.mode,
                    new_state,
                    primary_key=self.spec.load.primary_key,
                    metadata={"foundation.load_id": report.load_id},
                )
        except Exception:
            self.pending.remove(report.load_id)  # no commit: the next run reads these rows again
            # deltalake wraps an error raised while it reads the stream (InvalidRowsError...) in a DeltaError
            if stream_errors:
                raise stream_errors[0] from None
            raise
        finally:
            # Release DuckDB's stream now: left to the garbage collector it may outlive its connection.
            data.close()
            stream.close()
        crash_point("after_bronze_commit")
        report.delta_version = result.version
        report.rows_total = self.bronze.row_count()
        report.rows_inserted, report.rows_updated = result.rows_inserted, result.rows_updated
        report.invalid_reasons = dict(reasons)
        if self.spec.on_invalid_rows == "drop-with-count":
            report.rows_dropped = len(quarantined)
        elif pending_rows:
            self._write_quarantine(report, pending_rows[0])
        crash_point("after_load")
        detail = (
            f"read {report.rows_read} = landed {report.rows_landed} + quarantined {report.rows_quarantined} + "
            f"dropped {report.rows_dropped} + stale {report.rows_stale} + superseded {report.rows_superseded}"
        )
        outcomes = gate.after_commit(report.reconciles, detail, now)
        report.checks = [o.to_dict() for o in outcomes]

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

    def _on_invalid(self, reason: str, invalid: pa.RecordBatch | None) -> None:
        if self.spec.on_invalid_rows == "fail":
            where = f" in {invalid.column(SOURCE_FILE_COLUMN)[0].as_py()}" if invalid is not None else ""
            raise InvalidRowsError(
                f"{self.source.key}: invalid row{where}: {reason}. "
                "on_invalid_rows is 'fail', so nothing was landed (use 'quarantine' to land the valid rows)."
            )

    def _invalid_summary(self, count: int, reasons: Counter[str]) -> str:
        top = ", ".join(f"{reason} ({n})" for reason, n in reasons.most_common(5))
        return f"{self.source.key}: {count} invalid rows: {top}"


def write_quarantine(
    quarantine: BronzeTable, rows: pa.Table, load_id: str, partition: PartitionWindow | None
) -> int | None:
    """A load's quarantine rows in one commit: appended, or replacing the partition's earlier ones."""
    metadata = {"foundation.load_id": load_id}
    if partition is not None:
        return replace_quarantine_partition(quarantine, rows, partition, metadata)
    return quarantine.append_rows(rows, metadata)


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
    """Load a source; `partition`: only that window of a partitioned source, replacing it."""
    if partition is None and source.spec.partitions is not None:
        raise ValueError(
            f"{source.key} is partitioned by {source.spec.partitions.by} partitions: load a partition or a range "
            f"of them with `foundation backfill {source.key} --from DATE --to DATE` (or from the Dagster UI)"
        )
    return SourceLoader(workspace, source, progress, partition).run()
