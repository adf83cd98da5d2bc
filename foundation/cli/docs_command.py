"""`foundation docs`: the dbt documentation site of the workspace's data model (dbt docs generate, then serve)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from foundation.cli.output import EXIT_PROBLEMS, console, err_console, fail, fail_on_spec_errors, print_result
from foundation.core.workspace import Workspace


def docs_cli(
    serve: Annotated[
        bool, typer.Option("--serve", help="Serve the site after generating it (`dbt docs serve`, until Ctrl-C).")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8080,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of text.")] = False,
) -> None:
    """Generate dbt's documentation site of the data model: models, sources, columns, tests, lineage graph.

    Writes the profile and the generated dbt files, refreshes the bronze views, then runs `dbt docs generate` into
    .foundation/dbt/target/docs/ (open index.html, or add --serve). Exit 1 if the project or dbt fails.

    Plain dbt works too, after this or any `foundation run`: `cd dbt_project && dbt build`, `dbt docs generate`,
    `dbt docs serve` (docs/data-model.md#plain-dbt).
    """
    # lazy: every command module is imported for `foundation --help`; the dbt engine loads duckdb and deltalake
    from foundation.engine.dbt.docs import docs_env, generate_docs, serve_command
    from foundation.engine.dbt.paths import dbt_paths
    from foundation.engine.dbt.project import DbtPrepareError
    from foundation.specs.errors import SpecValidationError

    workspace = Workspace.open()
    try:
        site = generate_docs(workspace)
    except SpecValidationError as exc:
        fail_on_spec_errors(exc, workspace.root, "docs" if json_output else None)
    except DbtPrepareError as exc:
        fail("docs", str(exc), json_output, EXIT_PROBLEMS)
    if json_output:
        print_result("docs", site.to_dict())
    else:
        console.print(f"dbt docs of {site.models} models and {site.sources} sources: {site.index}", highlight=False)
    if not serve:
        return
    paths = dbt_paths(workspace)
    err_console.print(f"serving on http://{host}:{port} (Ctrl-C stops it)", highlight=False)
    sys.stdout.flush()
    os.chdir(paths.project_dir)
    # dbt replaces this process: Ctrl-C and a parent's SIGTERM reach the server itself, and no child outlives us.
    command = serve_command(paths, host, port)
    os.execvpe(command[0], command, docs_env(paths))
