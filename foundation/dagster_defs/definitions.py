"""Build the Dagster `Definitions` of a workspace from its YAML (thin YAML, thick factory).

Asset keys: `<usecase>/bronze/<source>`; group = use case; owners, kinds and description from the YAML.
"""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations at runtime.

from pathlib import Path

import dagster as dg

from foundation.dagster_defs.resources import FoundationResource
from foundation.ingest.report import LoadReport
from foundation.workspace import SourceRef, Workspace


def bronze_asset_key(source: SourceRef) -> dg.AssetKey:
    return dg.AssetKey([source.usecase, "bronze", source.name])


def _preview_markdown(report: LoadReport) -> str:
    if not report.preview:
        return "_no rows landed in this load_"
    columns = list(report.preview[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in report.preview:
        lines.append("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def materialization_metadata(report: LoadReport, uri: str) -> dict[str, object]:
    schema = dg.TableSchema(columns=[dg.TableColumn(name=n, type=t) for n, t in report.schema])
    metadata: dict[str, object] = {
        "load_id": report.load_id,
        "status": report.status,
        "rows_read": report.rows_read,
        "rows_landed": report.rows_landed,
        "rows_quarantined": report.rows_quarantined,
        "rows_dropped": report.rows_dropped,
        "rows_stale": report.rows_stale,
        "rows_superseded": report.rows_superseded,
        "rows_reconcile": report.reconciles,
        "files_loaded": report.files_loaded,
        "delta_version": report.delta_version,
        "seconds": round(report.seconds, 3),
        "dagster/uri": uri,
        "preview": dg.MetadataValue.md(_preview_markdown(report)),
    }
    if report.schema:
        metadata["dagster/column_schema"] = schema
    if report.rows_total is not None:
        metadata["dagster/row_count"] = report.rows_total
    if report.invalid_reasons:
        metadata["invalid_reasons"] = dg.MetadataValue.json(report.invalid_reasons)
    return {k: v for k, v in metadata.items() if v is not None}


def source_asset(workspace: Workspace, source: SourceRef) -> dg.AssetsDefinition:
    spec = source.spec
    uri = workspace.bronze_uri(source.usecase, source.name)

    @dg.asset(
        key=bronze_asset_key(source),
        group_name=source.usecase,
        owners=[spec.owner],
        kinds={spec.extract.type, "delta"},
        description=spec.description,
        tags={"layer": "bronze", **{tag: "" for tag in spec.tags}},
        metadata={
            "source_yaml": str(source.path.relative_to(workspace.root)),
            "schedule": spec.schedule,
            "load_mode": spec.load.mode,
            "primary_key": ", ".join(spec.load.primary_key) or "-",
            "dagster/uri": uri,
        },
    )
    def _ingest(context: dg.AssetExecutionContext, foundation: FoundationResource) -> dg.MaterializeResult:
        report = foundation.ingest(source.key)
        context.log.info(
            f"{source.key}: read {report.rows_read}, landed {report.rows_landed}, "
            f"quarantined {report.rows_quarantined} ({report.status})"
        )
        return dg.MaterializeResult(metadata=materialization_metadata(report, uri))

    return _ingest


def source_schedule(source: SourceRef) -> dg.ScheduleDefinition | None:
    if source.spec.schedule == "manual":
        return None
    return dg.ScheduleDefinition(
        name=f"{source.usecase}__{source.name}__schedule",
        cron_schedule=source.spec.schedule,
        target=dg.AssetSelection.assets(bronze_asset_key(source)),
        description=f"Refresh plan of {source.key} (from {source.path.name})",
    )


def build_definitions(workspace_dir: Path | None = None) -> dg.Definitions:
    """All definitions of the workspace; raises with every spec error if a YAML is invalid."""
    workspace = Workspace.open(workspace_dir)
    sources = workspace.sources()
    schedules = [s for s in (source_schedule(src) for src in sources) if s is not None]
    return dg.Definitions(
        assets=[source_asset(workspace, src) for src in sources],
        schedules=schedules,
        resources={"foundation": FoundationResource(workspace_dir=str(workspace.root))},
    )
