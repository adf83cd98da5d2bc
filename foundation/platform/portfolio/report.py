"""The portfolio of a workspace: every use case with its sheet's scores, quadrant and detected phase.

The only module here that reads the workspace (bronze and gold Delta tables, the promotion history, the Dagster
instance's schedule states); the rules it applies are the pure functions of `scoring` and `phase`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from foundation.core.workspace import Workspace, load_model_specs, usecase_file
from foundation.engine.dbt.manifest import load_manifest
from foundation.engine.dbt.paths import dbt_paths
from foundation.engine.dbt.publish import gold_uri, published_models
from foundation.platform.portfolio.phase import Evidence, phase_of
from foundation.platform.portfolio.scoring import Scores, rank_key, score_sheet
from foundation.specs.errors import SpecError
from foundation.specs.usecase import UsecaseSpec
from mlops.registry import champion_lineage, read_history

log = logging.getLogger(__name__)
GOLD = "gold"


@dataclass(frozen=True)
class PortfolioEntry:
    name: str
    title: str
    type: str | None
    owner: str | None
    sponsor: str | None
    scores: Scores
    phase: str
    declared_phase: str | None
    evidence: Evidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "type": self.type,
            "owner": self.owner,
            "sponsor": self.sponsor,
            "value": self.scores.value,
            "complexity": self.scores.complexity,
            "quadrant": self.scores.quadrant,
            "missing": list(self.scores.missing),
            "phase": self.phase,
            "declared_phase": self.declared_phase,
            "evidence": self.evidence.to_dict(),
        }


def _is_delta(uri: str, storage_options: dict[str, str]) -> bool:
    try:
        return DeltaTable.is_deltatable(uri, storage_options=storage_options or None)
    except Exception:  # an unreachable store reads as "not there"; the phase is a hint, not a gate
        return False


def _gold_models(workspace: Workspace, usecase: str) -> set[str]:
    """Names of the use case's models that may have a gold snapshot: from the dbt manifest, and the local folder."""
    names: set[str] = set()

    paths = dbt_paths(workspace)
    if paths.manifest.exists():
        with contextlib.suppress(ValueError, KeyError):
            names |= {node["name"] for node in published_models(load_manifest(paths), usecase)}
    local = Path(workspace.lakehouse_root) / GOLD / usecase
    if "://" not in workspace.lakehouse_root and local.is_dir():
        names |= {p.name for p in local.iterdir() if p.is_dir()}
    return names


def _champions(workspace: Workspace) -> set[str]:
    """Registered names with a champion, replayed from the promotion history (no MLflow import)."""

    try:
        events = read_history(workspace)
    except Exception as exc:  # no readable history: no champion to report
        log.debug("promotion history unreadable: %s", exc)
        return set()
    by_model: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_model.setdefault(event["model"], []).append(event)
    return {name for name, model_events in by_model.items() if champion_lineage(model_events)}


def running_schedules(workspace: Workspace) -> set[str]:
    """Names of the schedules turned on in the workspace's Dagster instance (none when it was never created)."""
    dagster = workspace.settings.dagster
    if dagster.storage != "postgres" and dagster.home is None and not (workspace.state_dir / "dagster").is_dir():
        return set()
    try:
        # lazy: dagster (seconds), only when the workspace has an instance to read
        from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

        from foundation.dagster_defs.instance import dagster_instance

        instance = dagster_instance(workspace)
        states = instance.all_instigator_state(
            instigator_type=InstigatorType.SCHEDULE, instigator_statuses={InstigatorStatus.RUNNING}
        )
        return {state.name for state in states}
    except Exception as exc:  # an instance that cannot be read says nothing about schedules
        log.warning("cannot read the Dagster instance's schedules: %s", exc)
        return set()


def gather_evidence(workspace: Workspace, usecase: str, champions: set[str], running: set[str] | None) -> Evidence:
    options = workspace.settings.lakehouse.storage_options
    sources = [s for s in workspace.scan.sources if s.usecase == usecase]
    landed = sum(1 for s in sources if _is_delta(workspace.bronze_uri(usecase, s.name), options))

    built = sum(1 for m in _gold_models(workspace, usecase) if _is_delta(gold_uri(workspace, usecase, m), options))
    models = [m for m in load_model_specs(workspace.root).models if m.usecase == usecase]
    schedules = [f"{usecase}__{s.name}__schedule" for s in sources if s.spec.schedule != "manual"]
    for model in models:
        name = model.registered_name
        if model.spec.schedules.training != "manual":
            schedules.append(f"{name}__training")
        if model.spec.schedules.inference != "manual":
            schedules.append(f"{name}__inference")
    return Evidence(
        sources=len(sources),
        sources_landed=landed,
        models_built=built,
        model_specs=len(models),
        champions=sum(1 for m in models if m.registered_name in champions),
        schedules=schedules,
        schedules_running=sorted(set(schedules) & (running or set())),
    )


def usecase_names(workspace: Workspace) -> list[str]:
    return sorted(workspace.scan.usecases)


def build_portfolio(workspace: Workspace, detect_phase: bool = True) -> list[PortfolioEntry]:
    """Every use case, ranked: quick wins, strategic bets, low-hanging fruit, to avoid, then unscored."""
    settings = workspace.settings.portfolio
    champions = _champions(workspace) if detect_phase else set()
    entries: list[PortfolioEntry] = []
    evidences: dict[str, Evidence] = {}
    for name in usecase_names(workspace):
        evidences[name] = gather_evidence(workspace, name, champions, None) if detect_phase else Evidence()
    # The Dagster instance is read only when some use case could be running (importing dagster costs seconds).
    if detect_phase and any(phase_of(e) == "industrialisation" for e in evidences.values()):
        running = running_schedules(workspace)
        evidences = {
            n: Evidence(**{**asdict(e), "schedules_running": sorted(set(e.schedules) & running)})
            for n, e in evidences.items()
        }
    for name, evidence in evidences.items():
        spec: UsecaseSpec | None = workspace.scan.usecases.get(name)
        entries.append(
            PortfolioEntry(
                name=name,
                title=spec.title if spec else name,
                type=spec.type if spec else None,
                owner=spec.owner if spec else None,
                sponsor=spec.sponsor if spec else None,
                scores=score_sheet(spec.qualification if spec else None, settings),
                phase=phase_of(evidence) if detect_phase else "-",
                declared_phase=spec.phase if spec else None,
                evidence=evidence,
            )
        )
    entries.sort(key=lambda e: rank_key(e.scores.quadrant, e.scores.value, e.scores.complexity, e.name))
    return entries


def qualification_warnings(workspace: Workspace) -> list[SpecError]:
    """`foundation check`: one warning per use case whose sheet is missing or incomplete, listing what to rate."""
    warnings = []
    for name, spec in sorted(workspace.scan.usecases.items()):
        if spec is None:
            continue  # no or invalid usecase.yaml: the scan reports it already
        path = usecase_file(workspace.root, name)
        scores = score_sheet(spec.qualification, workspace.settings.portfolio)
        if scores.missing:
            shown = ", ".join(scores.missing[:6]) + (
                f" and {len(scores.missing) - 6} more" if len(scores.missing) > 6 else ""
            )
            warnings.append(
                SpecError(
                    path,
                    None,
                    "qualification",
                    f"incomplete qualification sheet ({len(scores.missing)} unrated): {shown}",
                    "rate each criterion low, medium or high (docs/usecases.md); until then the portfolio shows "
                    "the use case as unscored",
                    severity="warning",
                )
            )
    return warnings
