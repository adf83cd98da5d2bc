"""`foundation init DIR`, `foundation usecase new NAME`, `foundation usecase list`: start a platform, onboard use cases.

Registered by `foundation.cli.main`. Rendering and writing live in `foundation.scaffold`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foundation.cli.output import console, fail, print_result, print_table
from foundation.core.workspace import Workspace
from foundation.specs.usecase import USECASE_TYPES

USECASE_HELP = "Onboard use cases: `new NAME` writes a working skeleton, `list` shows them with phase and scores."


def _relative(paths: list[Path], root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in paths]


def init(
    directory: Annotated[Path, typer.Argument(help="Folder of the new platform (created if missing).")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Write into a non-empty folder; files that exist are kept, never overwritten."),
    ] = False,
    framework_path: Annotated[
        Path | None,
        typer.Option(
            "--framework-path",
            help="Take Data Foundation from this local checkout (editable), to develop both side by side; "
            "default: the released version, by name and version.",
            file_okay=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Start a new data platform in DIRECTORY: foundation.yaml, usecases/ with a small working example (a CSV ->
    dbt -> a KPI -> a model), the dbt project, the Dagster entry point, .gitignore, a README and a CI workflow.

    The framework is a dependency of the new platform, by name and version (`data-foundation~=X.Y.Z` in its
    pyproject), not copied into it; --framework-path takes it from a local checkout instead.
    Then: `cd DIRECTORY && foundation check && foundation run`.
    """
    # lazy: jinja2 and the templates (0.4 s); `foundation --help` must not pay for them
    from foundation.scaffold.render import ScaffoldError
    from foundation.scaffold.writer import init_workspace

    try:
        result = init_workspace(directory, force=force, framework_path=framework_path)
    except ScaffoldError as exc:
        fail("init", str(exc), json_output)
    if json_output:
        print_result(
            "init",
            {
                "root": str(result.root),
                "written": _relative(result.written, result.root),
                "kept": _relative(result.kept, result.root),
            },
        )
        return
    console.print(f"[green]created[/green] a Data Foundation platform in {result.root} ({len(result.written)} files)")
    for path in result.kept:
        console.print(f"[yellow]kept[/yellow] {path.relative_to(result.root)} (exists: not overwritten)")
    console.print(f"next: cd {directory} && foundation check && foundation run")


def usecase_new(
    name: Annotated[str, typer.Argument(help="lower_snake_case name: the folder, Dagster group and table prefix.")],
    type_: Annotated[
        str | None, typer.Option("--type", help=f"One of: {', '.join(USECASE_TYPES)}.", show_default=False)
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Business owner's e-mail.")] = None,
    sponsor: Annotated[str | None, typer.Option(help="Business sponsor's e-mail.")] = None,
    users: Annotated[str | None, typer.Option(help="Target users, comma-separated.")] = None,
    question: Annotated[str | None, typer.Option(help="The business question, in one sentence.")] = None,
    title: Annotated[str | None, typer.Option(help="Human title (default: from the name).")] = None,
    source: Annotated[str, typer.Option(help="Name of the first source YAML stub.")] = "records",
    no_input: Annotated[
        bool, typer.Option("--no-input", help="Never prompt: take the flags, fail on a missing required one.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Write a use-case skeleton that works at once: usecase.yaml (with an empty qualification sheet), a source
    YAML stub, staging and mart dbt models, a KPI stub and, for `prediction`, a model spec with the 'as is'
    baseline and four candidates. `foundation check` then passes and lists the TODOs to fill in.

    Asks for what the flags do not give (type, owner, sponsor, users, question) unless --no-input.
    """
    # lazy: jinja2 and the templates (0.4 s); `foundation --help` must not pay for them
    from foundation.scaffold.render import ScaffoldError, UsecaseAnswers, check_identifier, normalise_type
    from foundation.scaffold.writer import create_usecase

    workspace = Workspace.open()
    try:
        check_identifier(name, "use-case name")  # before any question: a bad name wastes no one's time
        if type_ is None:
            type_ = (
                "prediction" if no_input else typer.prompt(f"Type ({', '.join(USECASE_TYPES)})", default="prediction")
            )
        type_ = normalise_type(type_)
        if owner is None:
            if no_input:
                raise ScaffoldError("--owner is required with --no-input (the business owner's e-mail)")
            owner = typer.prompt("Business owner (e-mail)")
        if sponsor is None and not no_input:
            sponsor = typer.prompt("Sponsor (e-mail, empty for none)", default="", show_default=False)
        if users is None and not no_input:
            users = typer.prompt("Target users (comma-separated)", default="", show_default=False)
        if question is None:
            question = (
                f"TODO: the business question of {name}"
                if no_input
                else typer.prompt("Business question (one sentence)")
            )
        answers = UsecaseAnswers(
            name=name,
            type=type_,
            owner=owner,
            question=question,
            sponsor=sponsor or None,
            users=[u for u in (users or "").split(",") if u.strip()],
            title=title,
            source=source,
        )
        result = create_usecase(workspace.root, answers)
    except ScaffoldError as exc:
        fail("usecase new", str(exc), json_output)
    written = _relative(result.written, workspace.root)
    if json_output:
        print_result("usecase new", {"usecase": name, "type": type_, "written": written})
        return
    console.print(f"[green]created[/green] use case {name} ({type_}):")
    for path in written:
        console.print(f"  {path}")
    console.print(
        "next: `foundation check` lists what to fill in; then land the data and `foundation run " + name + "`"
    )


def usecase_list(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Every use case: name, type, owner, detected phase, value and complexity scores, quadrant."""
    from foundation.platform.portfolio.report import build_portfolio  # lazy: deltalake and pyarrow (0.4 s)

    workspace = Workspace.open()
    entries = sorted(build_portfolio(workspace), key=lambda e: e.name)
    if json_output:
        print_result("usecase list", [e.to_dict() for e in entries])
        return
    print_table(
        "Use cases",
        ["use case", "type", "owner", "phase", "value", "complexity", "quadrant"],
        [
            [
                e.name,
                e.type or "-",
                e.owner or "-",
                e.phase,
                "-" if e.scores.value is None else f"{e.scores.value:.0f}",
                "-" if e.scores.complexity is None else f"{e.scores.complexity:.0f}",
                e.scores.quadrant,
            ]
            for e in entries
        ],
        right=["value", "complexity"],
    )
