"""Printing for the CLI: rich tables for people, JSON for machines (`--json`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from foundation.core.library_output import library_output_to
from foundation.specs.errors import SpecError, SpecValidationError

# Logs and CI have no terminal width: give tables room there instead of truncating every column.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]


@contextmanager
def tool_output_to(path: Path) -> Iterator[None]:
    """What libraries print (dbt, MLflow) goes to a log file; our consoles keep the terminal."""
    console.file, err_console.file = sys.stdout, sys.stderr  # pinned: the redirect must not take our own output
    try:
        with library_output_to(path):
            yield
    finally:
        console.file = err_console.file = None  # type: ignore[assignment]  # back to following sys.stdout/stderr


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_result(command: str, data: Any, *, ok: bool = True, errors: Sequence[dict[str, Any]] = ()) -> None:
    """The `--json` output of every command, success or not (README, "Every command exits the same way"):
    `{"ok": bool, "command": "models list", "data": <the command's result or null>, "errors": [{"message": ...}]}`."""
    print_json({"ok": ok, "command": command, "data": data, "errors": list(errors)})


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = ()) -> None:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


# Exit codes, the same in every command: 0 fine, 1 problems found (a failed load, check or step), 2 usage (an unknown
# name: use case, source, model, KPI; a bad option value).
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def fail(command: str, message: str, json_output: bool, code: int = EXIT_USAGE) -> NoReturn:
    """Stop `command` on an error: `error <message>` on stderr, or with --json the error object on stdout."""
    if json_output:
        print_result(command, None, ok=False, errors=[{"message": message}])
    else:
        err_console.print("[red]error[/red] ", end="", highlight=False)
        err_console.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_spec_errors(errors: list[SpecError], root: Path) -> None:
    """Each YAML error as `severity file:line: field: message`, paths relative to the workspace root."""
    for error in errors:
        colour = "red" if error.severity == "error" else "yellow"
        err_console.print(f"[{colour}]{error.severity}[/{colour}] ", end="", highlight=False)
        err_console.print(error.format(relative_to=root), markup=False, highlight=False, soft_wrap=True)


def fail_on_spec_errors(exc: SpecValidationError, root: Path, json_command: str | None = None) -> NoReturn:
    """Stop on the workspace's YAML errors; with `json_command` (the command run with --json), as its envelope."""
    if json_command is not None:
        print_result(json_command, None, ok=False, errors=[e.to_dict() for e in exc.errors])
        raise typer.Exit(1)
    print_spec_errors(exc.errors, root)
    err_console.print(f"[red]{len(exc.errors)} error(s) in the workspace YAML; fix them (see `foundation check`).")
    raise typer.Exit(1)
