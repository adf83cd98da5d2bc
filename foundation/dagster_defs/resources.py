"""The resources through which assets reach the workspace (settings, specs, lakehouse) and report progress."""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations at runtime.

from pathlib import Path
from typing import Protocol

import dagster as dg

from foundation.core.workspace import Workspace
from foundation.engine.ingest.runner import LoadAttempt, attempt_source
from foundation.engine.lakehouse.partitions import PartitionWindow

LOAD_PROGRESS = "load_progress"  # the resource key of a LoadProgress


class LoadProgress(Protocol):
    """Who watches loads as they run (the CLI's progress bar), passed to the run as the `load_progress` resource.
    It is told of rows only: each load's report comes back in the run's result (`definitions.load_reports`)."""

    def on_start(self, source: str) -> None: ...
    def on_rows(self, source: str, rows_read: int) -> None: ...
    def on_end(self, source: str, failed: bool) -> None: ...


class NoProgress:
    """The default: nobody watches (the daemon, the UI)."""

    def on_start(self, source: str) -> None:
        pass

    def on_rows(self, source: str, rows_read: int) -> None:
        pass

    def on_end(self, source: str, failed: bool) -> None:
        pass


class FoundationResource(dg.ConfigurableResource):
    """A workspace folder; each asset run opens it afresh so settings and specs are current."""

    workspace_dir: str

    def workspace(self) -> Workspace:
        return Workspace.open(Path(self.workspace_dir))

    def ingest(
        self, source_key: str, partition: PartitionWindow | None = None, progress: LoadProgress | None = None
    ) -> LoadAttempt:
        """One load of `source_key`, as a value: a failed load returns its error and what its rules concluded."""
        progress = progress or NoProgress()
        workspace = self.workspace()
        (source,) = workspace.select_sources([source_key])
        progress.on_start(source_key)
        try:
            attempt = attempt_source(
                workspace, source, progress=lambda n: progress.on_rows(source_key, n), partition=partition
            )
        except Exception:
            progress.on_end(source_key, failed=True)
            raise
        if attempt.report is not None:
            progress.on_rows(source_key, attempt.report.rows_read)
        progress.on_end(source_key, failed=attempt.error is not None)
        return attempt
