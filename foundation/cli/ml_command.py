"""`foundation train USECASE` and `foundation models list|show|promote|rollback|challenger` (the MLOps issue).

Training runs the model's Dagster assets in process (training set -> candidates -> evaluation -> registered), so
the run shows in `foundation ui`; then it prints the comparison table ('as is' vs candidates) and the gate's verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from foundation.cli.output import console, err_console, fail, print_result, print_table, tool_output_to
from foundation.core.workspace import Workspace

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]

MODELS_HELP = (
    "The MLflow model registry of the workspace: champions, versions, the promotion history.\n\n"
    "Every model is `<usecase>__<model>`; the `champion` alias is what batch inference and the API serve. "
    "`promote` and `rollback` move it by hand and record who, when and why."
)


def train_models(
    workspace: Workspace, usecase: str, model: str | None = None
) -> tuple[bool, list[dict[str, Any]], dict[str, str]]:
    """Materialise the training assets of the use case's model specs.

    Returns (run ok, training reports, {model key: why its training was skipped (too little data)})."""
    import dagster as dg  # lazy: dagster, +2 s on every command's start-up (`foundation --help`)

    from foundation.core.workspace import load_model_specs  # lazy: pydantic spec models, +20 ms on every start-up
    from foundation.dagster_defs.definitions import build_definitions  # lazy: dagster
    from foundation.dagster_defs.ingest_run import QUIET_RUN_CONFIG  # lazy: dagster
    from foundation.dagster_defs.instance import dagster_instance  # lazy: dagster
    from foundation.dagster_defs.ml_assets import training_reports, training_selection  # lazy: dagster

    scan = load_model_specs(workspace.root)
    refs = [r for r in scan.models if r.usecase == usecase and model in (None, r.spec.name)]
    if not refs:
        known = ", ".join(sorted(r.key for r in scan.models)) or "none"
        raise LookupError(f"no model spec for {usecase!r}{f' named {model!r}' if model else ''}; known: {known}")
    defs = build_definitions(workspace.root)
    selection = training_selection(refs[0])
    for ref in refs[1:]:
        selection = selection | training_selection(ref)
    # MLflow's notices ("Registered model ... already exists") and dagster's go to the log: the console is ours
    with tool_output_to(workspace.state_dir / "logs" / "train.log"):
        result = dg.materialize(
            list(defs.assets or []),
            selection=selection,
            instance=dagster_instance(workspace),
            resources=defs.resources,
            run_config=QUIET_RUN_CONFIG,
            raise_on_error=False,
            tags={"foundation/command": "train", "foundation/usecase": usecase},
        )
    trained = training_reports(result)
    reports = [with_model_kpis(workspace, ref, trained[ref.key]) for ref in refs if ref.key in trained]
    skipped = {r.key: _skip_reason(workspace, r) for r in refs if r.key not in trained and result.success}
    errors = [
        e.event_specific_data.error.message.strip()  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE" and e.event_specific_data and e.event_specific_data.error
    ]
    for error in errors:
        err_console.print(f"[red]failed[/red] {error.splitlines()[0]}", highlight=False)
    return result.success, reports, skipped


def with_model_kpis(workspace: Workspace, ref: Any, report: dict[str, Any]) -> dict[str, Any]:
    """The training report and, under it, each model KPI at its latest day (e.g. trucks at risk)."""
    from mlops.kpis import latest_model_kpis  # lazy: pandas, +0.35 s on every command's start-up

    return {**report, "model_kpis": latest_model_kpis(workspace, ref)}


def _skip_reason(workspace: Workspace, ref: Any) -> str:
    from mlops.pipeline import load_training_set  # lazy: scikit-learn and mlflow, +4 s
    from mlops.training import training_problem  # lazy: scikit-learn

    return training_problem(load_training_set(workspace, ref).frame, ref.spec) or "skipped (see `foundation ui`)"


def print_training_report(report: dict[str, Any]) -> None:
    from foundation.specs.model import CostSpec, SelectionSpec  # lazy: pydantic models, +10 ms on every start-up
    from mlops.report import comparison_rows  # lazy: +8 ms on every command's start-up

    cost = CostSpec(currency=report["currency"], false_negative=0) if report["currency"] else None
    selection = SelectionSpec.model_construct(metric=report["metric"], min_precision=None, cost=cost)
    comparison = report["comparison"]
    rows = comparison_rows(comparison, selection)
    print_table(report["title"], ["", *comparison], rows, right=list(comparison))
    console.print(gate_verdict(report), highlight=False)
    for kpi in report.get("model_kpis", []):  # e.g. trucks at risk, from the champion's batch predictions
        console.print(
            f"{kpi['label']}: {kpi['value']:,.0f} {kpi['unit']} on {kpi['period']} "
            f"(KPI {kpi['id']}, from the champion's batch predictions)",
            highlight=False,
        )


def gate_verdict(report: dict[str, Any]) -> str:
    """The winner and what the gate made of it: a new champion version, or not registered (its MLflow run keeps it)."""
    gate = report["gate"]
    champion = f"v{report['champion']}" if report["champion"] else "none"
    if gate["passed"]:
        outcome = f"{report['model']} v{report['registered_version']} [green]champion[/green]"
    else:
        outcome = f"[yellow]not promoted[/yellow] (not registered; logged in MLflow run {report['run_id']})"
    return f"winner: {report['winner']} -> {outcome}: {'; '.join(gate['reasons'])}. Champion now: {champion}"


def train(
    usecase: Annotated[str, typer.Argument(help="The use case whose model specs (usecases/<uc>/ml/*.yaml) to train.")],
    model: Annotated[str | None, typer.Option(help="Only this model of the use case.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Train a use case's models: the 'as is' rule and every candidate on a time split, logged to MLflow.

    Prints the comparison (TN, FN, TP, FP, precision, recall, F1, business metric). The winner is registered;
    it becomes `champion` only if it passes the gate (beats 'as is' and the current champion by the spec's
    margins). Reads the published feature table: run `foundation run USECASE` first. Exit 1 on failure.
    """
    from mlops.dataset import FeatureTableMissing  # lazy: pandas, +0.2 s on every command's start-up

    workspace = Workspace.open()
    try:
        ok, reports, skipped = train_models(workspace, usecase, model)
    except (LookupError, FeatureTableMissing) as exc:
        fail("train", str(exc.args[0] if exc.args else exc), json_output)
    if json_output:
        errors = [{"message": f"{key}: {reason}", "model": key} for key, reason in skipped.items()]
        errors += [] if ok else [{"message": "a training step failed (see `foundation ui`)"}]
        print_result("train", {"reports": reports, "skipped": skipped}, ok=ok and not skipped, errors=errors)
    else:
        for report in reports:
            print_training_report(report)
    for key, reason in skipped.items():
        err_console.print(f"[yellow]not trained[/yellow] {key}: {reason}", highlight=False)
    raise typer.Exit(0 if ok and not skipped else 1)


def models_list(json_output: JsonFlag = False) -> None:
    """Every registered model: its champion version, versions, the champion's candidate and score."""
    from mlops.registry import list_models  # lazy: +20 ms on every command's start-up

    items = list_models(Workspace.open())
    if json_output:
        print_result("models list", items)
        return
    print_table(
        "Models (foundation models show NAME)",
        ["model", "champion", "versions", "latest", "candidate", "metric", "score"],
        [
            [
                i["model"],
                f"v{i['champion']}" if i["champion"] else "-",
                i["versions"],
                i["latest"],
                i["estimator"] or "-",
                i["metric"] or "-",
                "-" if i["score"] is None else f"{i['score']:,.3f}",
            ]
            for i in items
        ],
        right=["versions", "latest", "score"],
    )


def models_show(
    name: Annotated[str, typer.Argument(help="A registered model, `<usecase>__<model>`.")],
    json_output: JsonFlag = False,
) -> None:
    """A model's versions (candidate, score, gate verdict, champion) and its promotion history (who, when, why)."""
    from mlops.registry import RegistryError, show_model  # lazy: as in `models list`

    try:
        data = show_model(Workspace.open(), name)
    except RegistryError as exc:
        fail("models show", str(exc), json_output)
    if json_output:
        print_result("models show", data)
        return
    print_table(
        f"{name}: champion v{data['champion']}" if data["champion"] else f"{name}: no champion",
        ["version", "created (UTC)", "candidate", "metric", "score", "threshold", "gate", "champion"],
        [
            [
                v["version"],
                v["created"],
                v["candidate"],
                v["metric"],
                "-" if v["score"] is None else f"{v['score']:,.3f}",
                "-" if v["threshold"] is None else f"{v['threshold']:.3f}",
                v["gate"] or "-",
                "yes" if v["champion"] else "",
            ]
            for v in data["versions"]
        ],
        right=["version", "score", "threshold"],
    )
    print_table(
        "Promotion history",
        ["at (UTC)", "action", "version", "from", "by", "reason"],
        [
            [e["at"], e["action"], e["version"] or "-", e["previous_version"] or "-", e["actor"], e["reason"]]
            for e in data["history"]
        ],
    )


def models_promote(
    name: Annotated[str, typer.Argument(help="A registered model, `<usecase>__<model>`.")],
    version: Annotated[int, typer.Argument(help="The version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the promotion history).")] = "manual promotion",
    json_output: JsonFlag = False,
) -> None:
    """Make VERSION the champion by hand, bypassing the gate; the history records who, when and why."""
    from mlops.registry import promote  # lazy: as in `models list`

    move_champion("models promote", lambda workspace: promote(workspace, name, version, reason), reason, json_output)


def models_rollback(
    name: Annotated[str, typer.Argument(help="A registered model, `<usecase>__<model>`.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the promotion history).")] = "rollback",
    json_output: JsonFlag = False,
) -> None:
    """Give the champion alias back to the version that held it before the current one (from the history)."""
    from mlops.registry import rollback  # lazy: as in `models list`

    move_champion("models rollback", lambda workspace: rollback(workspace, name, reason), reason, json_output)


def move_champion(command: str, move: Callable[[Workspace], Any], reason: str, json_output: bool) -> None:
    """Move the champion by hand (promote or rollback), record it for automation, print the move; unknown: exit 2."""
    from mlops.registry import RegistryError  # lazy: as in `models list`

    workspace = Workspace.open()
    try:
        event = move(workspace)
    except RegistryError as exc:
        fail(command, str(exc), json_output)
    record_champion_change(workspace, event)
    if json_output:
        print_result(command, event.__dict__)
    else:
        console.print(f"{event.model}: champion v{event.previous_version or '-'} -> v{event.version} ({reason})")


def record_champion_change(workspace: Workspace, event: Any) -> None:
    """A champion moved by hand is a new materialisation of the model's `registered` asset on the workspace's
    Dagster instance: under automation, its batch predictions and monitoring follow it as they follow the gate."""
    import dagster as dg  # lazy: dagster, as in train_models

    from foundation.dagster_defs.instance import dagster_instance  # lazy: dagster

    usecase, _, model = event.model.partition("__")
    dagster_instance(workspace).report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey([usecase, "ml", model, "registered"]),
            description=f"champion v{event.previous_version or '-'} -> v{event.version} by hand ({event.action})",
            metadata={"version": event.version, "action": event.action, "actor": event.actor, "reason": event.reason},
        )
    )


def train_stage(workspace: Workspace, usecase: str, trained: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The demo's training stage: `trained` holds the training reports of the run that has just built the use case
    (`RunSummary.training`); the use case's models without one are trained now. None: no model spec."""
    from foundation.core.workspace import load_model_specs  # lazy: as in train_models

    refs = [r for r in load_model_specs(workspace.root).models if r.usecase == usecase]
    if not refs:
        return None
    reports = [with_model_kpis(workspace, r, trained[r.key]) for r in refs if r.key in trained]
    ok, skipped = True, {}
    for ref in refs:
        if ref.key not in trained:
            trained_ok, more, not_trained = train_models(workspace, usecase, ref.spec.name)
            ok, reports, skipped = ok and trained_ok, reports + more, {**skipped, **not_trained}
    return {"ok": ok, "reports": reports, "skipped": skipped}


def print_train_stage(stage: dict[str, Any] | None) -> None:
    if stage is None:
        console.print("no model spec in this use case: training skipped (see docs/mlops.md)")
        return
    console.print("Models: 'as is' vs candidates on a time split (foundation train USECASE, foundation models list)")
    for report in stage["reports"]:
        print_training_report(report)
    for key, reason in stage.get("skipped", {}).items():
        console.print(f"[yellow]not trained[/yellow] {key}: {reason}", highlight=False)


def models_challenger(
    name: Annotated[str, typer.Argument(help="A registered model, `<usecase>__<model>`.")],
    version: Annotated[
        int | None, typer.Argument(help="The version to score in shadow (not the champion); omit with --clear.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the challenger alias instead.")] = False,
    reason: Annotated[str, typer.Option(help="Why (kept in the promotion history).")] = "challenger",
    json_output: JsonFlag = False,
) -> None:
    """Point the `challenger` alias at VERSION: the API scores it in shadow on a share of the requests
    (api.shadow_share), logs its answer beside the champion's, never returns it; the use-case dashboard compares
    the two on the same requests. The champion does not move. Unknown model or version: exit 2."""
    from mlops.registry import RegistryError, clear_challenger, set_challenger  # lazy: as in `models list`

    command = "models challenger"
    if (version is None) == (not clear):
        fail(command, "give a VERSION, or --clear (not both)", json_output)
    workspace = Workspace.open()
    try:
        if clear:
            event = clear_challenger(workspace, name, reason)
        else:
            event = set_challenger(workspace, name, int(version or 0), reason)
    except RegistryError as exc:
        fail(command, str(exc), json_output)
    if json_output:
        print_result(command, event.__dict__)
    elif clear:
        console.print(f"{name}: challenger v{event.previous_version} removed ({reason})")
    else:
        console.print(f"{name}: challenger v{event.previous_version or '-'} -> v{event.version} ({reason})")
