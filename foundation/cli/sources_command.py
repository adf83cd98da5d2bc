"""`foundation sources list|new`: every declared source and its bronze table; a new source YAML of a given kind."""

from __future__ import annotations

from typing import Annotated

import typer

from foundation.cli.output import JsonFlag, console, fail, fail_on_spec_errors, print_result, print_table
from foundation.core.workspace import Workspace
from foundation.specs.errors import SpecValidationError

HELP = "Inspect the declared sources (`list`), or declare a new one (`new USECASE/NAME --type csv`)."


def sources_list(json_output: JsonFlag = False) -> None:
    """List every source: use case, extract type, load mode, schedule, owner, and its bronze table."""
    from foundation.engine.lakehouse.bronze import BronzeTable  # lazy: deltalake and pyarrow, for --help's sake

    workspace = Workspace.open()
    try:
        sources = workspace.sources()
    except SpecValidationError as exc:
        fail_on_spec_errors(exc, workspace.root, "sources list" if json_output else None)
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
        print_result("sources list", items)
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


def sources_new(
    target: Annotated[str, typer.Argument(help="USECASE/NAME of the new source (NAME alone with one use case).")],
    type_: Annotated[
        str, typer.Option("--type", help="Extract type: csv, parquet, json, ndjson, delta, rest_api, sql, html_table.")
    ] = "csv",
    owner: Annotated[str | None, typer.Option(help="Owner's e-mail (default: the use case's owner).")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Write a commented source YAML of that extract type into usecases/USECASE/sources/NAME.yaml, with its
    `$schema` line and a TODO on each line to fill in; `foundation check` passes on it at once.

    Examples: `foundation sources new shop/orders --type csv`, `foundation sources new shop/tickets --type rest_api`.
    """
    # lazy: jinja2 and the templates (0.4 s); `foundation --help` must not pay for them
    from foundation.scaffold.render import ScaffoldError, source_file
    from foundation.scaffold.writer import create_spec_file, target_usecase, usecase_owner

    root = Workspace.open().root
    try:
        usecase, name = target_usecase(root, target)
        owner = owner or usecase_owner(root, usecase) or "data-team@example.com"
        written = create_spec_file(root, source_file(usecase, name, type_, owner)).written
    except ScaffoldError as exc:
        fail("sources new", str(exc), json_output)
    paths = [str(p.relative_to(root)) for p in written]
    if json_output:
        print_result("sources new", {"usecase": usecase, "source": name, "type": type_, "written": paths})
        return
    console.print(f"[green]created[/green] {paths[0]}: fill in its TODOs, then `foundation check`", highlight=False)
