"""`foundation kpi list|show`: the KPI catalogue from the terminal (what `foundation run` last published)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from foundation.cli.output import JsonFlag, console, err_console, fail, print_result, print_table
from foundation.core.workspace import Workspace

if TYPE_CHECKING:
    from kpi_catalog.catalogue import KpiCatalog

HELP = (
    "The KPI catalogue: definitions, owners, lineage, latest values against target (read from the gold "
    "snapshots of the last `foundation run`)."
)

STATE_STYLE = {"on_target": "green", "off_target": "yellow", "alert": "red", "no_target": "dim", "no_data": "dim"}
TREND_ARROW = {"improving": "↗ improving", "worsening": "↘ worsening", "flat": "→ flat"}


def _catalog() -> KpiCatalog:
    from kpi_catalog.catalogue import KpiCatalog  # lazy: pyarrow and deltalake (0.4 s), not for --help

    return KpiCatalog.of(Workspace.open())


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


NOT_PUBLISHED = "no KPI published yet: run `foundation run` (or `foundation demo`) first"


def _unpublished() -> None:
    err_console.print(NOT_PUBLISHED)


def kpi_list(
    search: Annotated[str | None, typer.Argument(help="Words to search in ids, labels, descriptions, owners.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """List KPIs: use case, owner, status, latest value against target, trend."""
    catalog = _catalog()
    items = catalog.list(search)
    if json_output:
        unpublished = [] if catalog.published else [{"message": NOT_PUBLISHED}]
        print_result("kpi list", items, ok=catalog.published, errors=unpublished)
        raise typer.Exit(0 if catalog.published else 1)
    if not catalog.published:
        _unpublished()
        raise typer.Exit(1)
    rows = []
    for item in items:
        latest = item["latest"]
        style = STATE_STYLE[item["state"]]
        rows.append(
            [
                item["id"],
                item["usecase"],
                item["status"],
                item["owner"],
                f"{latest['period']} ({item['grain']})" if latest else "-",
                f"[{style}]{_fmt(latest['value'] if latest else None, item['unit'])}[/{style}]",
                _fmt(item.get("target"), item["unit"]),
                TREND_ARROW[item["trend"]],
            ]
        )
    print_table(
        f"KPIs (published {catalog.generated_at})",
        ["kpi", "use case", "status", "owner", "latest period", "value", "target", "trend"],
        rows,
        right=["value", "target"],
    )


def kpi_show(
    name: Annotated[str, typer.Argument(help="KPI id, as in `foundation kpi list`.")],
    grain: Annotated[str | None, typer.Option(help="day, week or month (default: the finest it has).")] = None,
    by: Annotated[
        str | None,
        typer.Option(help="A declared dimension: the latest value and history of each of its values."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """One KPI: definition, owner, lineage back to the source YAML, latest value against target, history.

    `--by DIM` slices it by one of its declared dimensions (`foundation kpi show fleet_availability --by segment`)."""
    from kpi_catalog.catalogue import KpiNotFoundError  # lazy: pyarrow and deltalake (0.4 s), not for --help

    catalog = _catalog()
    try:
        item: dict[str, Any] = catalog.summary(name, grain)
        history = catalog.history(name, item["grain"]).get(None, [])
        slices = None if by is None else catalog.breakdown(name, by, item["grain"])
    except (KpiNotFoundError, ValueError) as exc:  # an unknown KPI, grain or dimension: a usage error
        fail("kpi show", str(exc.args[0] if exc.args else exc), json_output)
    if json_output:
        sliced = {} if slices is None else {"by": by, "series": slices}
        history_rows = [{"period": p.period.isoformat(), "value": p.value} for p in history]
        print_result("kpi show", {**item, "history": history_rows, **sliced})
        return
    _print_header(item)
    if by is not None and slices is not None:
        _print_slices(item, by, slices)
        return
    latest = item["latest"]
    style = STATE_STYLE[item["state"]]
    value = f"[{style}]{_fmt(latest['value'], item['unit'])} ({item['state'].replace('_', ' ')})[/{style}]"
    console.print(f"latest {latest['period'] if latest else '-'}: {value if latest else '-'} · trend {item['trend']}")
    print_table(
        f"History ({item['grain']}, last {len(history[-24:])})",
        ["period", "value", "vs target"],
        [[p.period.isoformat(), _fmt(p.value, item["unit"]), _vs_target(p.value, item)] for p in history[-24:]],
        right=["value"],
    )


def _print_header(item: dict[str, Any]) -> None:
    """A KPI's definition, owner and lineage."""
    console.print(f"[bold]{item['label']}[/bold] ({item['id']}, {item['status']}) - {item['description']}")
    console.print(
        f"owner {item['owner']} · unit {item['unit']} · {item['direction']} is better · "
        f"target {_fmt(item.get('target'))} · alert {_fmt(item.get('alert'))} · grains {', '.join(item['grains'])}"
        f" · dimensions {', '.join(item.get('dimensions', [])) or '-'}"
    )
    console.print(f"declared in {item['yaml']}" + (f" (extends {item['extends']})" if item.get("extends") else ""))
    if item.get("expression"):
        by = f"by {item['time']}" if item.get("time") else "at each refresh (no time column)"
        console.print(f"computed as {item['expression']} over {item['model']} {by}")
    else:
        console.print(f"computed by SQL in {item['dbt_model']}:\n{item['sql'].strip()}", highlight=False)
    console.print(f"lineage: {item['dbt_model']} <- models {', '.join(item['upstream_models'])}")
    for source in item["lineage"]:
        console.print(f"  <- source {source['source']} ({source['yaml']}, owner {source['owner']})")


def _print_slices(item: dict[str, Any], by: str, slices: list[dict[str, Any]]) -> None:
    """The latest value of each value of `by`, then their histories side by side (one column per value)."""
    unit = item["unit"]
    rows = []
    for s in slices:
        latest = s["latest"]
        style = STATE_STYLE[s["state"]]
        value = f"[{style}]{_fmt(latest['value'] if latest else None, unit)}[/{style}]"
        state = f"[{style}]{s['state'].replace('_', ' ')}[/{style}]"
        rows.append([str(s[by]), latest["period"] if latest else "-", value, state, TREND_ARROW[s["trend"]]])
    print_table(
        f"By {by} ({item['grain']})", [by, "latest period", "value", "vs target", "trend"], rows, right=["value"]
    )
    values = {(str(s[by]), p["period"]): p["value"] for s in slices for p in s["history"]}
    periods = sorted({period for _, period in values})[-24:]
    names = [str(s[by]) for s in slices]
    print_table(
        f"History by {by} ({item['grain']}, last {len(periods)})",
        ["period", *names],
        [[period, *[_fmt(values.get((n, period)), unit) for n in names]] for period in periods],
        right=names,
    )


def _vs_target(value: float | None, item: dict[str, Any]) -> str:
    from kpi_catalog.catalogue import status_against_target  # lazy: pyarrow and deltalake, not for --help

    state = status_against_target(value, item["direction"], item.get("target"), item.get("alert"))
    return f"[{STATE_STYLE[state]}]{state.replace('_', ' ')}[/{STATE_STYLE[state]}]"


def kpi_new(
    target: Annotated[str, typer.Argument(help="USECASE/NAME of the new KPI (NAME alone with one use case).")],
    model: Annotated[
        str | None, typer.Option(help="The dbt model it aggregates (default: fct_<usecase>, the skeleton's mart).")
    ] = None,
    time: Annotated[str, typer.Option(help="The model's business date column.")] = "load_date",
    owner: Annotated[str | None, typer.Option(help="Owner's e-mail (default: the use case's owner).")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Write a commented KPI YAML into usecases/USECASE/kpis/NAME.yaml, with its `$schema` line and a TODO on
    each line to fill in (the expression, the unit); `foundation check` validates it against the model's columns.

    Example: `foundation kpi new shop/orders_per_day --model fct_orders --time order_date`.
    """
    # lazy: jinja2 and the templates (0.4 s); `foundation --help` must not pay for them
    from foundation.scaffold.render import ScaffoldError, kpi_file
    from foundation.scaffold.writer import create_spec_file, target_usecase, usecase_owner

    root = Workspace.open().root
    try:
        usecase, name = target_usecase(root, target)
        owner = owner or usecase_owner(root, usecase) or "data-team@example.com"
        files = kpi_file(usecase, name, owner, model or f"fct_{usecase}", time)
        written = create_spec_file(root, files).written
    except ScaffoldError as exc:
        fail("kpi new", str(exc), json_output)
    paths = [str(p.relative_to(root)) for p in written]
    if json_output:
        print_result("kpi new", {"usecase": usecase, "kpi": name, "written": paths})
        return
    console.print(f"[green]created[/green] {paths[0]}: fill in its TODOs, then `foundation check`", highlight=False)
