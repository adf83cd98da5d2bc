"""MLflow tracking and registry on the workspace's settings, the champion gate, and our promotion history.

MLflow 3 keeps aliases (`champion`) but no history of who moved them, when or why: every promotion, rejection
and rollback is appended to a Delta table in the lakehouse (`<lakehouse>/ml/_registry/promotions`), and the
champion's lineage (for rollback) is replayed from it.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from deltalake.exceptions import TableNotFoundError

from foundation.core.extras import require_extra
from foundation.core.workspace import Workspace
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import open_delta, storage_options_of, write_delta
from foundation.specs.model import GateSpec

CHAMPION = "champion"
CHALLENGER = "challenger"  # a version the API scores in shadow beside the champion (serving/shadow.py)
# the gate's events that registered a version: a promotion, or a winner made challenger (gate.challenger: true)
REGISTERING_ACTIONS = ("promote", "gate_challenger")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network calls from a laptop or a test


# -- settings -> MLflow --------------------------------------------------------------------------------------------


def tracking_uri(workspace: Workspace) -> str:
    """`sqlite:///relative/mlflow.db` made absolute against the workspace root (other URIs are left alone)."""
    uri = workspace.settings.mlflow.tracking_uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = workspace.root / uri.removeprefix(prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"{prefix}{path}"
    return uri


def artifact_root(workspace: Workspace) -> str:
    return workspace.resolve(workspace.settings.mlflow.artifact_root)


def mlflow_client(workspace: Workspace) -> Any:
    """An MlflowClient on the workspace's store; also points the fluent API (log_model, start_run) at it."""
    import mlflow  # lazy: +2 s; the definitions, `foundation doctor` and the API import this module

    uri = tracking_uri(workspace)
    if uri.startswith("postgresql"):
        require_extra("psycopg2", "postgres", f"the MLflow store {uri.split('://', 1)[0]}://...")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def uses_tracking_server(uri: str) -> bool:
    """An MLflow tracking server (http/https, Databricks) rather than a store this process opens itself."""
    return uri.split(":", 1)[0] in ("http", "https", "databricks")


def experiment_id(workspace: Workspace, client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    if uses_tracking_server(tracking_uri(workspace)):
        # The server places artifacts (`--artifacts-destination`, proxied by `--serve-artifacts`): clients then
        # need no object-store credentials, and `mlflow.artifact_root` is not used.
        return client.create_experiment(name)
    return client.create_experiment(name, artifact_location=f"{artifact_root(workspace).rstrip('/')}/{name}")


# -- the gate (pure) ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str]
    metric: str
    candidate_score: float
    baseline_score: float
    champion_score: float | None
    champion_version: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(value: float, metric: str) -> str:
    return f"{value:,.0f}" if metric == "savings" else f"{value:.3f}"


def decide(
    metric: str,
    candidate: float,
    baseline: float,
    champion: float | None,
    champion_version: int | None,
    gate: GateSpec,
    lower_is_better: bool = False,
) -> GateDecision:
    """A new model becomes champion only if it beats the 'as is' rule and the current champion by the margins.

    Scores are the selection metric on the same validation rows: higher is better, or, for a regression's errors
    (`lower_is_better`), lower is better and the margins are reductions of the error."""
    reasons, passed = [], True
    s = -1.0 if lower_is_better else 1.0
    need = s * baseline + gate.min_improvement_over_baseline
    if s * candidate >= need and s * candidate > s * baseline:
        reasons.append(f"beats 'as is' ({_num(candidate, metric)} vs {_num(baseline, metric)})")
    else:
        passed = False
        reasons.append(
            f"does not beat 'as is' by {_num(gate.min_improvement_over_baseline, metric)}: "
            f"{_num(candidate, metric)} vs {_num(baseline, metric)}"
        )
    if champion is None:
        reasons.append("no champion yet")
    else:
        need = s * champion + gate.min_improvement_over_champion
        if s * candidate >= need and (s * candidate > s * champion or gate.min_improvement_over_champion < 0):
            reasons.append(
                f"beats champion v{champion_version} ({_num(candidate, metric)} vs {_num(champion, metric)})"
            )
        else:
            passed = False
            reasons.append(
                f"does not beat champion v{champion_version} by {_num(gate.min_improvement_over_champion, metric)}: "
                f"{_num(candidate, metric)} vs {_num(champion, metric)}; the champion stays"
            )
    return GateDecision(passed, reasons, metric, candidate, baseline, champion, champion_version)


# -- promotion history (Delta, append-only) ----------------------------------------------------------------------

HISTORY_SCHEMA = pa.schema(
    [
        ("at", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("action", pa.string()),  # promote | reject | rollback | manual_promote | challenger | challenger_cleared
        ("version", pa.int64()),
        ("previous_version", pa.int64()),
        ("actor", pa.string()),
        ("reason", pa.string()),
        ("metric", pa.string()),
        ("score", pa.float64()),
        ("baseline_score", pa.float64()),
        ("champion_score", pa.float64()),
        ("run_id", pa.string()),
        ("metrics", pa.string()),  # JSON: the comparison row of the version
    ]
)


@dataclass(frozen=True)
class HistoryEvent:
    model: str
    action: str
    version: int | None
    previous_version: int | None
    actor: str
    reason: str
    metric: str = ""
    score: float | None = None
    baseline_score: float | None = None
    champion_score: float | None = None
    run_id: str = ""
    metrics: str = "{}"
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def history_uri(workspace: Workspace) -> str:
    return f"{workspace.lakehouse_root.rstrip('/')}/ml/_registry/promotions"


def append_history(workspace: Workspace, event: HistoryEvent) -> None:
    table = pa.Table.from_pylist([asdict(event)], schema=HISTORY_SCHEMA)
    write_delta(workspace, history_uri(workspace), table, mode="append")


def read_history(workspace: Workspace, model: str | None = None) -> list[dict[str, Any]]:
    """Events, oldest first (all models, or one)."""
    uri = history_uri(workspace)
    try:
        open_delta(workspace, uri)
    except TableNotFoundError:
        return []
    con = duckdb.connect()
    try:
        where = "where model = ?" if model else ""
        relation = delta_relation_sql(con, uri, storage_options=storage_options_of(workspace))
        cursor = con.execute(
            f'select * from {relation} {where} order by "at", version',
            [model] if model else [],
        )
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def champion_lineage(events: Iterable[dict[str, Any]]) -> list[int]:
    """Replay the history: a promotion pushes its version, a rollback pops. The last item is the champion."""
    stack: list[int] = []
    for event in events:
        if event["action"] in ("promote", "manual_promote"):
            stack.append(int(event["version"]))
        elif event["action"] == "rollback" and stack:
            stack.pop()
    return stack


def actor() -> str:
    return os.environ.get("FOUNDATION_ACTOR") or getpass.getuser()


# -- registry operations ---------------------------------------------------------------------------------------


class RegistryError(LookupError):
    pass


def current_champion(client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException  # lazy: mlflow, as in mlflow_client

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def champion_versions(client: Any) -> dict[str, int | None]:
    """Every registered model -> the version its `champion` alias points at (None: no champion), in one search
    (what the API polls for hot reload; raises when the registry cannot be read)."""
    found: dict[str, int | None] = {}
    page_token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=page_token)
        for model in page:
            version = (model.aliases or {}).get(CHAMPION)
            found[model.name] = int(version) if version is not None else None
        page_token = page.token
        if not page_token:
            return found


def _version_or_fail(client: Any, name: str, version: int) -> Any:
    from mlflow.exceptions import MlflowException  # lazy: mlflow, as in mlflow_client

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"{name} has no version {version}") from exc


def _alias_moved(
    name: str, action: str, target: Any, previous: Any | None, who: str | None, reason: str
) -> HistoryEvent:
    """The history event of an alias set by hand on `target`, with the score the gate recorded on it."""
    tags = target.tags or {}
    return HistoryEvent(
        name,
        action,
        int(target.version),
        int(previous.version) if previous else None,
        who or actor(),
        reason,
        tags.get("foundation.metric", ""),
        float(tags["foundation.score"]) if "foundation.score" in tags else None,
        run_id=target.run_id or "",
    )


def promote(workspace: Workspace, name: str, version: int, reason: str, who: str | None = None) -> HistoryEvent:
    """Make `version` the champion by hand (a human decision, recorded with its reason; no gate)."""
    client = mlflow_client(workspace)
    target = _version_or_fail(client, name, version)
    previous = current_champion(client, name)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    event = _alias_moved(name, "manual_promote", target, previous, who, reason)
    append_history(workspace, event)
    return event


def rollback(workspace: Workspace, name: str, reason: str, who: str | None = None) -> HistoryEvent:
    """Give the champion alias back to the version that held it before the current one."""
    client = mlflow_client(workspace)
    lineage = champion_lineage(read_history(workspace, name))
    if len(lineage) < 2:
        raise RegistryError(f"{name}: no previous champion to roll back to (promotion history: {lineage or 'empty'})")
    current, previous = lineage[-1], lineage[-2]
    _version_or_fail(client, name, previous)
    client.set_registered_model_alias(name, CHAMPION, str(previous))
    event = HistoryEvent(name, "rollback", previous, current, who or actor(), reason)
    append_history(workspace, event)
    return event


def list_models(workspace: Workspace) -> list[dict[str, Any]]:
    """Every registered model, replayed from the promotion history without MLflow (its import costs 2 s of a 2 s
    `foundation models list`): only the gate registers versions, and each registration is a `promote` event."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for event in read_history(workspace):
        by_model.setdefault(event["model"], []).append(event)
    items = []
    for name, events in sorted(by_model.items()):
        registered = {
            int(e["version"]): e for e in events if e["action"] in REGISTERING_ACTIONS and e["version"] is not None
        }
        if not registered:
            continue  # every winner was rejected: nothing in the registry
        lineage = champion_lineage(events)
        champion = lineage[-1] if lineage else None
        promoted = registered.get(champion) if champion is not None else None
        items.append(
            {
                "model": name,
                "champion": champion,
                "versions": len(registered),
                "latest": max(registered),
                "metric": promoted["metric"] if promoted else None,
                "score": promoted["score"] if promoted else None,
                "estimator": json.loads(promoted["metrics"] or "{}").get("candidate") if promoted else None,
            }
        )
    return items


def show_model(workspace: Workspace, name: str) -> dict[str, Any]:
    from mlflow.exceptions import MlflowException  # lazy: mlflow, as in mlflow_client

    client = mlflow_client(workspace)
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        known = ", ".join(m["model"] for m in list_models(workspace)) or "none (run `foundation train USECASE`)"
        raise RegistryError(f"no registered model named {name!r}; known: {known}") from exc
    champion = current_champion(client, name)
    versions = []
    for v in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)):
        tags = v.tags or {}
        versions.append(
            {
                "version": int(v.version),
                "created": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).isoformat(timespec="seconds"),
                "candidate": tags.get("foundation.candidate"),
                "metric": tags.get("foundation.metric"),
                "score": float(tags["foundation.score"]) if "foundation.score" in tags else None,
                "threshold": float(tags["foundation.threshold"]) if "foundation.threshold" in tags else None,
                "gate": tags.get("foundation.gate"),
                "champion": champion is not None and v.version == champion.version,
                "run_id": v.run_id,
            }
        )
    history = read_history(workspace, name)
    for event in history:
        event["at"] = event["at"].isoformat(timespec="seconds") if event["at"] else None
    return {
        "model": name,
        "description": model.description,
        "champion": int(champion.version) if champion else None,
        "versions": versions,
        "history": history,
    }


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# -- the challenger alias ----------------------------------------------------------------------------------------


def becomes_challenger(decision: GateDecision, gate: GateSpec) -> bool:
    """Pure: whether a winner the gate did not promote becomes the challenger (`gate.challenger: true`): it beat
    'as is' by its margin and there is a champion it did not beat by its margin. Its evidence then comes from live
    requests, in shadow, rather than from one validation set."""
    beats_baseline = (
        decision.candidate_score >= decision.baseline_score + gate.min_improvement_over_baseline
        and decision.candidate_score > decision.baseline_score
    )
    return gate.challenger and not decision.passed and decision.champion_score is not None and beats_baseline


def current_challenger(client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException  # lazy: mlflow, as in mlflow_client

    try:
        return client.get_model_version_by_alias(name, CHALLENGER)
    except MlflowException:
        return None


def alias_versions(client: Any, alias: str) -> dict[str, int]:
    """Every registered model whose `alias` points at a version -> that version, in one search (what the API polls
    for its challengers)."""
    found: dict[str, int] = {}
    page_token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=page_token)
        for model in page:
            version = (model.aliases or {}).get(alias)
            if version is not None:
                found[model.name] = int(version)
        page_token = page.token
        if not page_token:
            return found


def set_challenger(workspace: Workspace, name: str, version: int, reason: str, who: str | None = None) -> HistoryEvent:
    """Point the `challenger` alias at `version` (not the champion): the API scores it in shadow on a share of the
    requests, logged beside the champion's answer and never returned. Recorded in the promotion history."""
    client = mlflow_client(workspace)
    target = _version_or_fail(client, name, version)
    champion = current_champion(client, name)
    if champion is not None and int(champion.version) == version:
        raise RegistryError(f"{name} v{version} is the champion: a challenger is another version")
    previous = current_challenger(client, name)
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    event = _alias_moved(name, "challenger", target, previous, who, reason)
    append_history(workspace, event)
    return event


def clear_challenger(workspace: Workspace, name: str, reason: str, who: str | None = None) -> HistoryEvent:
    """Remove the `challenger` alias (shadow scoring of the model stops at the API's next poll)."""
    client = mlflow_client(workspace)
    previous = current_challenger(client, name)
    if previous is None:
        raise RegistryError(f"{name} has no challenger")
    client.delete_registered_model_alias(name, CHALLENGER)
    event = HistoryEvent(name, "challenger_cleared", None, int(previous.version), who or actor(), reason)
    append_history(workspace, event)
    return event
