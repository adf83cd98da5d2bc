"""dbt models as Dagster assets, downstream of the ingestion assets; dbt tests as asset checks.

Keys: a dbt source `source('<uc>', '<source>')` is the ingestion asset `<uc>/bronze/<source>`; a model under
`models/<uc>/<layer>/` is `<uc>/<layer>/<model>` (group = use case). One op runs `dbt build` for the selected models
under the warehouse lock, after refreshing the bronze views; then one `<uc>/gold/published` asset per use case
exports the tables readers use (gold Delta snapshots, the KPI catalogue file). A failing dbt test fails the dbt step,
so nothing downstream of it is built or published.
"""

# No `from __future__ import annotations` here: Dagster reads the asset functions' annotations at runtime.

import importlib.metadata
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from packaging.version import Version

from foundation.core.workspace import Workspace
from foundation.dagster_defs.automation import AutomationPlan
from foundation.dagster_defs.dbt_partitions import partitioned_dbt_assets, partitioned_model_names
from foundation.dagster_defs.resources import FoundationResource
from foundation.engine.dbt.invocation import dbt_executable
from foundation.engine.dbt.manifest import load_manifest
from foundation.engine.dbt.partial_parse import reuse_partial_parse
from foundation.engine.dbt.paths import GENERATED_DIR, DbtPaths, dbt_paths
from foundation.engine.dbt.project import DbtPrepareError, prepare_project
from foundation.engine.dbt.publish import gold_uri, publish_usecase, published_models
from foundation.engine.dbt.warehouse import refresh_bronze_views, warehouse_lock
from foundation.specs.errors import SpecValidationError

DBT_OP_NAME = "dbt_models"
WAREHOUSE_POOL = "duckdb_warehouse"  # one writer per DuckDB file: Dagster runs these steps one at a time
log = logging.getLogger(__name__)


def model_layer(fqn: Sequence[str]) -> str:
    """`['foundation', uc, layer, ..., name]` -> layer; generated files are staging."""
    layer = fqn[2] if len(fqn) > 3 else "models"
    return "staging" if layer == GENERATED_DIR else layer


class FoundationDbtTranslator(DagsterDbtTranslator):
    """Sources map onto the ingestion assets; models get `<uc>/<layer>/<model>` keys, their use case's group and
    its automation condition (foundation/dagster_defs/automation.py)."""

    def __init__(
        self, settings: DagsterDbtTranslatorSettings | None = None, automation: AutomationPlan | None = None
    ) -> None:
        super().__init__(settings=settings)
        self.automation = automation

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        if self.automation is None or dbt_resource_props["resource_type"] == "source":
            return None
        return self.automation.condition(self.get_asset_key(dbt_resource_props), dbt_resource_props["fqn"][1])

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], "bronze", dbt_resource_props["name"]])
        fqn = dbt_resource_props["fqn"]
        return dg.AssetKey([fqn[1], model_layer(fqn), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return dbt_resource_props["source_name"]
        return dbt_resource_props["fqn"][1]

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        owner = (dbt_resource_props.get("config", {}).get("meta") or {}).get("owner")
        return [owner] if owner else super().get_owners(dbt_resource_props)

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        tags = dict(super().get_tags(dbt_resource_props))
        if dbt_resource_props["resource_type"] == "model":
            tags["layer"] = model_layer(dbt_resource_props["fqn"])
        return tags


def translator(automation: AutomationPlan | None = None) -> FoundationDbtTranslator:
    settings = DagsterDbtTranslatorSettings(enable_asset_checks=True)
    return FoundationDbtTranslator(settings=settings, automation=automation)


class FoundationDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two per-run costs we do not need: its `dbt --version` subprocess (2 s
    measured; the `dbt` it runs is the one installed beside this interpreter, so dbt-core's version is the answer)
    and its in-process adapter."""

    @cached_property
    def _cli_version(self) -> Version:
        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        # An in-process dbt adapter, only used by fetch_column_metadata (which we do not call): 1-2 s per run saved.
        return None


def dbt_resource(paths: DbtPaths, workspace: Workspace) -> DbtCliResource:
    # No `--target`: the generated profile's default target is already `dbt.target`, and `dbt parse` runs without
    # one; dbt's partial parsing refuses a saved manifest whose command-line target differs (a full parse, 4 s).
    return FoundationDbtCliResource(
        project_dir=str(paths.project_dir),
        profiles_dir=str(paths.profiles_dir),
        dbt_executable=dbt_executable(),
    )


def dbt_models_asset(
    paths: DbtPaths, automation: AutomationPlan | None = None, exclude: str | None = None
) -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=paths.manifest,
        dagster_dbt_translator=translator(automation),
        name=DBT_OP_NAME,
        pool=WAREHOUSE_POOL,
        exclude=exclude,  # the models built per partition (foundation/dagster_defs/dbt_partitions.py)
    )
    def _dbt_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, foundation: FoundationResource
    ) -> Iterator[Any]:
        workspace = foundation.workspace()
        with warehouse_lock(
            workspace, on_wait=lambda: context.log.info("waiting for another run to release the warehouse")
        ):
            views = refresh_bronze_views(workspace)
            context.log.info(f"bronze views refreshed: {', '.join(sorted(views))}")
            # One fixed target folder (runs are serialised by the lock): run_results.json is where readers expect it.
            run_target = paths.target_dir / "run"
            reuse_partial_parse(paths.target_dir, run_target)
            invocation = dbt.cli(["build"], context=context, target_path=run_target)
            yield from invocation.stream()

    return _dbt_models


def publish_asset(
    paths: DbtPaths,
    workspace: Workspace,
    usecase: str,
    manifest: dict[str, Any],
    automation: AutomationPlan | None = None,
) -> dg.AssetsDefinition:
    translate = translator()
    nodes = published_models(manifest, usecase)
    deps = [translate.get_asset_key(node) for node in nodes]

    @dg.asset(
        key=dg.AssetKey([usecase, "gold", "published"]),
        group_name=usecase,
        deps=deps,
        kinds={"delta"},
        pool=WAREHOUSE_POOL,
        description=(
            f"Gold snapshots of {usecase}'s marts, features and KPIs (Delta, one version per build) and the KPI "
            "catalogue file: what the catalogue and the API read, never the warehouse a run is writing."
        ),
        tags={"layer": "gold"},
        metadata={"dagster/uri": gold_uri(workspace, usecase, "")},
        automation_condition=automation.condition(dg.AssetKey([usecase, "gold", "published"]), usecase)
        if automation
        else None,
    )
    def _publish(context: dg.AssetExecutionContext, foundation: FoundationResource) -> dg.MaterializeResult:
        from mlops.kpis import catalog_entries  # lazy: it loads pandas, +0.35 s on every definitions load

        current = foundation.workspace()
        with warehouse_lock(current):
            tables = publish_usecase(current, paths, usecase, catalog_entries(current))
        context.log.info(f"published {len(tables)} gold table(s) of {usecase}")
        return dg.MaterializeResult(
            metadata={
                "tables": dg.MetadataValue.md(
                    "\n".join(f"- `{t.model}`: {t.rows} rows, Delta v{t.delta_version}" for t in tables)
                ),
                "dagster/row_count": sum(t.rows for t in tables),
            }
        )

    return _publish


def dbt_definitions(
    workspace: Workspace, prepared: DbtPaths | None = None
) -> tuple[list[dg.AssetsDefinition], dict[str, Any]]:
    """The dbt assets and resources of a workspace; none when it has no dbt project.

    A project that does not parse (or KPI YAML that does not validate) must not stop ingestion from loading: it is
    reported as a warning here, and as an error by `foundation run` and `foundation check`. `prepared`: the paths
    `prepare_project` returned earlier in the same command (checks, generated files and fingerprint not redone).
    """
    if prepared is not None:
        paths = prepared
    elif not dbt_paths(workspace).exists():
        return [], {}
    else:
        try:
            paths = prepare_project(workspace)
        except (DbtPrepareError, SpecValidationError) as exc:
            warnings.warn(f"dbt assets not loaded: {exc}", stacklevel=2)
            return [], {}
    manifest = load_manifest(paths)
    usecases = sorted({n["fqn"][1] for n in manifest.get("nodes", {}).values() if n.get("resource_type") == "model"})
    automation = AutomationPlan.of(workspace)

    partitioned = partitioned_model_names(manifest)
    models = [n for n in manifest.get("nodes", {}).values() if n.get("resource_type") == "model"]
    automation = automation.with_partitioned(translator().get_asset_key(n) for n in models if n["name"] in partitioned)
    assets = [dbt_models_asset(paths, automation, exclude=" ".join(partitioned) or None)]
    assets += partitioned_dbt_assets(paths, manifest, translator(automation), WAREHOUSE_POOL)
    assets += [
        publish_asset(paths, workspace, uc, manifest, automation) for uc in usecases if published_models(manifest, uc)
    ]
    return assets, {"dbt": dbt_resource(paths, workspace)}
