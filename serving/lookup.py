"""The feature lookup behind score-by-key: per served model, each entity's latest row of its gold feature table,
held in memory and rebuilt when the table gets a new Delta version.

A model spec (`usecases/<uc>/ml/<model>.yaml`) names the feature table, the entity columns and the time column of
the registered model `<uc>__<model>`. `build_index` reads the table once (DuckDB over the Delta snapshot: the
latest row per entity, only the entity, time and model's input columns) into a dict keyed by the entity values;
a request then costs a dict lookup per key, never a scan. `FeatureLookups.refresh` runs at start-up and on every
`api.reload_interval_s` tick: it asks each table for its version (`DeltaTable.update_incremental`: reads only the
commits since the last tick) and rebuilds an index in a worker thread only when the version moved or the model's
inputs changed (a hot reload), then swaps it in with one assignment; requests in flight keep the index they took.
A table that cannot be read keeps the previous index serving, and the reason is shown with 503 until it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, create_model
from starlette.concurrency import run_in_threadpool

from foundation.core.workspace import Workspace, load_model_specs
from foundation.engine.lakehouse.catalog import delta_relation_sql
from foundation.engine.lakehouse.object_store import open_delta, storage_options_of
from foundation.engine.sql import quote_ident
from foundation.specs.model import ModelRef
from mlops.dataset import feature_table_uri
from mlops.inference import predictions_uri
from serving.loaded_models import ServedModel, _plain
from serving.schemas import _class_name

log = logging.getLogger("serving.lookup")

Key = tuple[Any, ...]


@dataclass(frozen=True)
class KeyedModel:
    """Where a registered model's rows are: from its model spec."""

    name: str  # registered: <usecase>__<model>
    table: str  # <usecase>/<feature table>, for messages
    entity: list[str]
    time: str
    features_uri: str
    predictions_uri: str


def keyed_models(workspace: Workspace) -> dict[str, KeyedModel]:
    """Every model spec of the workspace, by registered name (a spec with errors is left out: `check` says why)."""
    found = {}
    for ref in load_model_specs(workspace.root).models:
        found[ref.registered_name] = keyed_model(workspace, ref)
    return found


def keyed_model(workspace: Workspace, ref: ModelRef) -> KeyedModel:
    spec = ref.spec
    return KeyedModel(
        ref.registered_name,
        f"{ref.usecase}/{spec.feature_table}",
        list(spec.entity),
        spec.time,
        feature_table_uri(workspace, ref.usecase, spec),
        predictions_uri(workspace, ref),
    )


# -- the keys' types --------------------------------------------------------------------------------------------

IntKey = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]


def key_type(arrow_type: pa.DataType) -> Any:
    """Pure: the JSON type a client sends for an entity column of this Arrow type (strict: `7` is not `"7"`)."""
    if pa.types.is_integer(arrow_type):
        return IntKey
    if pa.types.is_date(arrow_type):
        return date
    return StrictStr


def key_part(value: Any) -> Any:
    """Pure: an entity value as the index keys it: text, an integer or a date as such (what `key_type` validates a
    client's value to), anything else as its text."""
    if isinstance(value, str | int) or type(value) is date:
        return value
    return str(value)


def keys_model(model: str, entity_types: dict[str, Any], max_keys: int) -> type[BaseModel]:
    """`{"keys": [{<entity column>: value, ...}, ...]}`: every entity column required, no other field."""
    fields: dict[str, Any] = {
        f"k{i}": (kind, Field(..., alias=column)) for i, (column, kind) in enumerate(entity_types.items())
    }
    row = create_model(_class_name(model, "Key"), __config__=ConfigDict(extra="forbid"), **fields)
    return create_model(
        _class_name(model, "KeysRequest"),
        __config__=ConfigDict(extra="forbid"),
        keys=(list[row], Field(..., min_length=1, max_length=max_keys)),  # type: ignore[valid-type]
    )


# -- the index --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureIndex:
    """One model's latest feature row per entity, at one version of its feature table."""

    keyed: KeyedModel
    table_version: int
    model_version: int
    columns: tuple[str, ...]  # the model's inputs, in signature order
    entity_types: dict[str, Any]  # entity column -> the key's pydantic type
    request_model: type[BaseModel]
    rows: dict[Key, tuple[Any, dict[str, Any]]]  # entity values -> (as_of, the model's inputs)

    def find(self, key: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
        return self.rows.get(tuple(key_part(key[c]) for c in self.keyed.entity))


def as_of_value(value: Any) -> Any:
    """Pure: a time value as JSON gives it (ISO 8601 text for a date or timestamp; an ordinal stays a number)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return _plain(value)


def model_inputs(model: ServedModel, keyed: KeyedModel, table_columns: list[str]) -> list[str]:
    """The columns to read for the model: its signature's, or without one every non-reserved column."""
    if model.columns is not None:
        return [c.name for c in model.columns]
    reserved = {*keyed.entity, keyed.time}
    return [c for c in table_columns if c not in reserved]


def build_index(
    workspace: Workspace, keyed: KeyedModel, model: ServedModel, version: int, max_keys: int
) -> FeatureIndex:
    """Read version `version` of the feature table once: the latest row (by the time column) of each entity.
    Raises LookupError naming what is missing when the table lacks a column the model needs."""
    storage = storage_options_of(workspace)
    table = open_delta(workspace, keyed.features_uri, version)
    schema = pa.schema(table.schema().to_arrow())
    columns = model_inputs(model, keyed, schema.names)
    missing = [c for c in dict.fromkeys((*keyed.entity, keyed.time, *columns)) if c not in schema.names]
    if missing:
        raise LookupError(f"{keyed.table} (version {version}) has no column {', '.join(missing)}")
    entity = ", ".join(quote_ident(c) for c in keyed.entity)
    selected = ", ".join(quote_ident(c) for c in dict.fromkeys((*keyed.entity, keyed.time, *columns)))
    con = duckdb.connect()
    try:
        relation = delta_relation_sql(con, keyed.features_uri, version=version, storage_options=storage)
        rows = con.sql(
            f"select {selected} from {relation} "
            f"qualify row_number() over (partition by {entity} order by {quote_ident(keyed.time)} desc nulls last) = 1"
        ).to_arrow_table()
    finally:
        con.close()
    entity_types = {c: key_type(schema.field(c).type) for c in keyed.entity}
    return FeatureIndex(
        keyed,
        version,
        model.version,
        tuple(columns),
        entity_types,
        keys_model(model.name, entity_types, max_keys),
        index_rows(rows, keyed, columns, real_columns(model)),
    )


def real_columns(model: ServedModel) -> set[str]:
    """The model's real-number inputs (a table's decimal or boolean is served as the float the model takes)."""
    return {c.name for c in model.columns or [] if c.type in ("double", "float")}


def _real(value: Any) -> float | None:
    return None if value is None else float(value)


def index_rows(
    rows: pa.Table, keyed: KeyedModel, columns: list[str], reals: set[str]
) -> dict[Key, tuple[Any, dict[str, Any]]]:
    """Pure: entity values -> (as_of, the model's inputs as JSON values), from the latest rows."""
    keys = [
        tuple(key_part(v) for v in values)
        for values in zip(*(rows.column(c).to_pylist() for c in keyed.entity), strict=True)
    ]
    as_of = [as_of_value(v) for v in rows.column(keyed.time).to_pylist()]
    values = {c: [_plain(_real(v) if c in reals else v) for v in rows.column(c).to_pylist()] for c in columns}
    return {key: (as_of[i], {c: values[c][i] for c in columns}) for i, key in enumerate(keys)}


# -- the holder, refreshed on a tick ---------------------------------------------------------------------------


class Unavailable(Exception):
    """Score-by-key cannot answer for this model now (503), or ever (404: no model spec): the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FeatureLookups:
    """The served models' feature indexes (`state.lookups`)."""

    def __init__(self, workspace: Workspace, max_keys: int) -> None:
        self.workspace = workspace
        self.max_keys = max_keys
        self.keyed: dict[str, KeyedModel] = {}
        self.indexes: dict[str, FeatureIndex] = {}
        self.errors: dict[str, str] = {}
        self._tables: dict[str, DeltaTable] = {}  # kept open: update_incremental reads only the new commits
        self._task: asyncio.Task[None] | None = None

    def index(self, model: ServedModel) -> FeatureIndex:
        """The index to score `model` by key; Unavailable (404, 503) saying why there is none."""
        index = self.indexes.get(model.name)
        if index is not None and index.columns == tuple(model_inputs(model, index.keyed, list(index.columns))):
            return index
        if model.name not in self.keyed:
            raise Unavailable(
                404,
                f"no model spec declares {model.name} in this workspace: scoring by key needs its entity columns "
                "and feature table (usecases/<usecase>/ml/<model>.yaml)",
            )
        reason = self.errors.get(model.name, "its feature index is being built")
        raise Unavailable(503, f"cannot score {model.name} by key yet: {reason}; retry shortly")

    def table_version(self, uri: str) -> int:
        """The feature table's latest version, cheaply: the commits since the last call only."""
        table = self._tables.get(uri)
        if table is None:
            table = self._tables[uri] = open_delta(self.workspace, uri)
        else:
            try:
                table.update_incremental()
            except Exception:  # replaced under us (an overwrite that recreated it): open it again
                table = self._tables[uri] = open_delta(self.workspace, uri)
        return table.version()

    def refresh_one(self, model: ServedModel) -> None:
        """Rebuild the model's index if its table has a new version or the model's inputs changed (a thread)."""
        keyed = self.keyed.get(model.name)
        if keyed is None:
            return
        try:
            version = self.table_version(keyed.features_uri)
            current = self.indexes.get(model.name)
            if current is not None and current.table_version == version and current.model_version == model.version:
                return
            fresh = build_index(self.workspace, keyed, model, version, self.max_keys)
        except Exception as exc:  # the previous index (if any) keeps serving
            message = f"{keyed.table} cannot be read: {type(exc).__name__}: {exc}"
            if self.errors.get(model.name) != message:
                log.error("feature lookup of %s: %s", model.name, message)
            self.errors[model.name] = message
            return
        self.indexes = {**self.indexes, model.name: fresh}
        self.errors.pop(model.name, None)
        log.info("feature lookup of %s: %d keys from %s version %d", model.name, len(fresh.rows), keyed.table, version)

    async def refresh(self, models: dict[str, ServedModel]) -> None:
        """One tick: the model specs read again, then each served model's index checked (and rebuilt if stale)."""
        try:
            self.keyed = await run_in_threadpool(keyed_models, self.workspace)
        except Exception as exc:
            log.error("feature lookup: cannot read the model specs: %s: %s", type(exc).__name__, exc)
        for _, model in sorted(models.items()):
            await run_in_threadpool(self.refresh_one, model)

    def start(self, state: Any, interval_s: float) -> None:
        if interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(state, interval_s), name="feature-lookup")

    async def _run(self, state: Any, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh(state.models)
            except Exception:  # the refresher must outlive any surprise
                log.exception("feature lookup refresh failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def open_lookups(state: Any) -> FeatureLookups:
    """The served models' indexes built (start-up), then refreshed on every `api.reload_interval_s` tick."""
    api = state.settings.api
    lookups = FeatureLookups(state.workspace, api.max_batch_size)
    await lookups.refresh(state.models)
    lookups.start(state, api.reload_interval_s)
    return lookups
