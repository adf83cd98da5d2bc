"""`foundation check`: every YAML error of the workspace at once, as file:line: field: message."""

from __future__ import annotations

from typing import Annotated

import typer

from foundation.cli.output import JsonFlag, console, err_console, print_result, print_spec_errors
from foundation.core.settings import FoundationSettings, LakehouseSettings
from foundation.core.settings_profiles import check_profile, selected_profile
from foundation.core.workspace import Workspace, find_workspace

ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="Settings profile to use (default: $FOUNDATION_PROFILE, else local)."),
]


def check(json_output: JsonFlag = False, profile: ProfileOption = None) -> None:
    """Validate every YAML of the workspace; report all errors at once as file:line: field: message.

    With --profile P, also validate that settings profile of foundation.yaml without connecting to anything:
    types and known keys, secrets only as ${VAR}, every ${VAR} unset here listed (run `foundation doctor` to connect).
    """
    # lazy: duckdb, pyarrow and the dbt, KPI and model-spec checks; `foundation --help` must not pay for them
    from foundation.engine.lakehouse.object_store import is_remote
    from foundation.platform.check import check_workspace

    root = find_workspace()
    name = selected_profile(profile)
    settings, errors = check_profile(root, name)
    settings = settings or FoundationSettings()
    if is_remote(settings.lakehouse.root):  # check never connects: the checks peeking at tables look locally
        settings = settings.model_copy(update={"lakehouse": LakehouseSettings()})
    workspace = Workspace(root=root, settings=settings, profile=name)
    errors += check_workspace(workspace)
    n_errors = sum(1 for e in errors if e.severity == "error")
    n_sources = len(workspace.scan.sources)
    if json_output:
        counts = {"sources": n_sources, "usecases": len(workspace.scan.usecases), "warnings": len(errors) - n_errors}
        print_result("check", {"profile": name, **counts}, ok=n_errors == 0, errors=[e.to_dict() for e in errors])
    else:
        print_spec_errors(errors, workspace.root)
        if n_errors:
            err_console.print(f"[red]{n_errors} error(s)[/red], {len(errors) - n_errors} warning(s)")
        else:
            console.print(
                f"[green]ok[/green]: profile {name}: {n_sources} source(s) in {len(workspace.scan.usecases)} "
                f"use case(s), {len(errors)} warning(s)"
            )
    raise typer.Exit(1 if n_errors else 0)
