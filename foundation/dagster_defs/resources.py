"""The resource through which assets reach the workspace (settings, specs, lakehouse)."""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations at runtime.

from pathlib import Path

import dagster as dg

from foundation.core.workspace import Workspace
from foundation.engine.ingest import events
from foundation.engine.ingest.report import LoadReport
from foundation.engine.ingest.runner import ingest_source
from foundation.engine.lakehouse.partitions import PartitionWindow


class FoundationResource(dg.ConfigurableResource):
    """A workspace folder; each asset run opens it afresh so settings and specs are current."""

    workspace_dir: str

    def workspace(self) -> Workspace:
        return Workspace.open(Path(self.workspace_dir))

    def ingest(self, source_key: str, partition: PartitionWindow | None = None) -> LoadReport:
        workspace = self.workspace()
        (source,) = workspace.select_sources([source_key])
        events.start(source_key)
        try:
            report = ingest_source(
                workspace, source, progress=lambda n: events.rows(source_key, n), partition=partition
            )
        except Exception as exc:
            events.error(source_key, exc)
            raise
        events.done(report)
        return report
