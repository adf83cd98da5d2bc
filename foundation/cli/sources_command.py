"""`foundation sources list`: every declared source and its bronze table."""

from __future__ import annotations

from foundation.cli.output import JsonFlag, fail_on_spec_errors, print_json, print_table
from foundation.core.workspace import Workspace
from foundation.specs.errors import SpecValidationError

HELP = "Inspect the declared sources."


def sources_list(json_output: JsonFlag = False) -> None:
    """List every source: use case, extract type, load mode, schedule, owner, and its bronze table."""
    from foundation.engine.lakehouse.bronze import BronzeTable  # lazy: deltalake and pyarrow, for --help's sake

    workspace = Workspace.open()
    try:
        sources = workspace.sources()
    except SpecValidationError as exc:
        fail_on_spec_errors(exc, workspace.root)
    items = []
    for source in sources:
        table = BronzeTable(
            workspace.bronze_uri(source.usecase, source.name), workspace.settings.lakehouse.storage_options
        )
        items.append(
            {
                "usecase": source.usecase,
                "source": source.name,
                "extract": source.spec.extract.type,
                "mode": source.spec.load.mode,
                "partitions": source.spec.partitions.by if source.spec.partitions else None,
                "schedule": source.spec.schedule,
                "owner": source.spec.owner,
                "columns": len(source.spec.columns) or "inferred",
                "delta_version": table.version(),
                "rows": table.row_count(),
                "yaml": str(source.path.relative_to(workspace.root)),
            }
        )
    if json_output:
        print_json(items)
        return
    print_table(
        "Sources",
        ["use case", "source", "extract", "mode", "schedule", "owner", "rows", "version"],
        [
            [
                i["usecase"],
                i["source"],
                i["extract"],
                f"{i['mode']}, {i['partitions']} partitions" if i["partitions"] else i["mode"],
                i["schedule"],
                i["owner"],
                "-" if i["rows"] is None else f"{i['rows']:,}",
                "-" if i["delta_version"] is None else i["delta_version"],
            ]
            for i in items
        ],
        right=["rows", "version"],
    )
