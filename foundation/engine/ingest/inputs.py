"""What a load reads: the files it has not landed yet (by fingerprint), a partition's files, a Delta table, or the
files a staged extract (rest_api, sql, html_table) was fetched into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.connectors.files import (
    SourceFile,
    check_not_all_blank,
    delta_reader_sql,
    reader_sql,
    resolve_files,
)
from foundation.engine.connectors.staging import StagedExtract, StageRequest, stage_extract, staged_reader_sql
from foundation.engine.ingest.crash_points import crash_point
from foundation.engine.lakehouse.bronze import LoadState
from foundation.engine.lakehouse.partitions import PartitionWindow, files_in_window
from foundation.specs.source import CsvExtract, DeltaExtract


@dataclass
class LoadInputs:
    files: list[SourceFile]  # files whose fingerprints the load records (none for staged and Delta sources)
    paths: list[str]  # what the reader reads; [] = nothing new
    staged: StagedExtract | None = None
    file_times: dict[str, datetime] = field(default_factory=dict)  # file-name partitions: the time each name carries
    files_total: int = 0

    def relation(self, con: duckdb.DuckDBPyConnection, source: SourceRef, column_types: dict[str, str]) -> str:
        """The SQL relation over the raw rows (the source-file lineage column included); `column_types`: the CSV
        columns read with a type (raw name -> DuckDB type; VARCHAR: read as text, typed by the landing query)."""
        extract = source.spec.extract
        if isinstance(extract, DeltaExtract):
            return delta_reader_sql(con, self.paths[0], extract)
        if self.staged is not None:
            return staged_reader_sql(self.staged)
        return reader_sql(extract, self.paths, [], column_types)


def state_key(workspace: Workspace, path: str) -> str:
    """Files inside the workspace are remembered by relative path, so a moved workspace is not reloaded."""
    try:
        return str(Path(path).resolve().relative_to(workspace.root))
    except ValueError:
        return path


def files_to_load(
    workspace: Workspace, source: SourceRef, state: LoadState, partition: PartitionWindow | None
) -> LoadInputs:
    spec = source.spec
    if isinstance(spec.extract, DeltaExtract):
        return LoadInputs(files=[], paths=[workspace.resolve(spec.extract.path)], files_total=1)
    files = resolve_files(workspace.root, spec.extract)
    total = len(files)
    file_times: dict[str, datetime] = {}
    if partition is not None:
        file_times = files_in_window(spec, [f.path for f in files], partition)
        files = [f for f in files if f.path in file_times]
    skip_known = spec.load.mode == "append" or (
        spec.load.incremental is not None and spec.load.incremental.new_files_only
    )
    if skip_known:
        files = [f for f in files if state.files.get(state_key(workspace, f.path)) != f.fingerprint]
    if isinstance(spec.extract, CsvExtract):
        check_not_all_blank(files, workspace.root)
    return LoadInputs(files=files, paths=[f.path for f in files], file_times=file_times, files_total=total)


def stage(workspace: Workspace, source: SourceRef, state: LoadState, staging_dir: Path) -> LoadInputs:
    """Fetch a staged extract (from the saved cursor on) into `staging_dir`."""
    request = StageRequest(
        workspace_root=workspace.root,
        source_key=source.key,
        extract=source.spec.extract,
        last_cursor=state.cursor,
        staging_dir=staging_dir,
        batch_rows=workspace.settings.ingest.batch_rows,
    )
    staged = stage_extract(request)
    crash_point("after_staging")
    return LoadInputs(files=[], paths=list(staged.paths), staged=staged, files_total=len(staged.paths))
