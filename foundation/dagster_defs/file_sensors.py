"""Load on file arrival: a sensor per file source that declares `load: {on_new_files: true}`.

Each tick lists the files its `extract.path` globs match; those new or changed since the last tick (path, size,
mtime) make one run of the source's bronze asset: one run per batch, not per file. On its first look, the files
modified before the source's last load are not new. A file modified in the last
`SETTLE_S` seconds may still be being written: it waits for the next tick. The cursor is the listing already
handed to a run; the load itself skips files it already landed (docs/sources.md).
"""

# No `from __future__ import annotations` here: Dagster reads the sensor function's annotations at runtime.

import hashlib
import json
import os
import time
from typing import Any

import dagster as dg

from foundation.core.workspace import SourceRef, Workspace
from foundation.dagster_defs.instance import usecase_tags
from foundation.dagster_defs.keys import bronze_asset_key
from foundation.engine.connectors.files import match_pattern
from foundation.specs.secrets import MissingSecretError

SETTLE_S = 2.0  # a file younger than this may still be being written
Fingerprint = tuple[int, int]  # (size in bytes, mtime in ns)


def sensor_name(source: SourceRef) -> str:
    return f"{source.usecase}__{source.name}__new_files"


def list_files(workspace: Workspace, source: SourceRef) -> dict[str, Fingerprint]:
    """Every file the source's globs match now, with its size and mtime."""
    listing: dict[str, Fingerprint] = {}
    for declared in source.spec.extract.paths:
        _, matched = match_pattern(workspace.root, declared)
        for path in matched:
            try:
                stat = os.stat(path)
            except FileNotFoundError:  # moved away between the glob and the stat
                continue
            listing[path] = (stat.st_size, stat.st_mtime_ns)
    return listing


def new_files(
    previous: dict[str, Fingerprint], listing: dict[str, Fingerprint], now_ns: int, settle_ns: int
) -> tuple[list[str], dict[str, Fingerprint]]:
    """Pure: the settled files that are new or changed since `previous`, and the next cursor (the settled listing,
    plus what `previous` knew of files still settling, so they count as changed once they settle)."""
    batch: list[str] = []
    cursor: dict[str, Fingerprint] = {}
    for path, fingerprint in sorted(listing.items()):
        if now_ns - fingerprint[1] < settle_ns:
            if path in previous:
                cursor[path] = previous[path]
            continue
        cursor[path] = fingerprint
        if previous.get(path) != fingerprint:
            batch.append(path)
    return batch, cursor


def already_loaded(listing: dict[str, Fingerprint], loaded_at_ns: int) -> dict[str, Fingerprint]:
    """Pure: the first look's cursor when the source was loaded before (by its cron, by hand): the files last
    modified before that load are not new."""
    return {path: fp for path, fp in listing.items() if fp[1] <= loaded_at_ns}


def encode_cursor(cursor: dict[str, Fingerprint]) -> str:
    return json.dumps({path: list(fp) for path, fp in cursor.items()}, sort_keys=True)


def decode_cursor(text: str | None) -> dict[str, Fingerprint]:
    if not text:
        return {}
    return {path: (int(fp[0]), int(fp[1])) for path, fp in json.loads(text).items()}


def batch_key(source: SourceRef, batch: list[str], listing: dict[str, Fingerprint]) -> str:
    """One run key per batch: the same files with the same sizes and mtimes never launch two runs."""
    digest = hashlib.sha256()
    for path in batch:
        digest.update(f"{path}\0{listing[path][0]}\0{listing[path][1]}\n".encode())
    return f"{source.key}:new_files:{digest.hexdigest()[:16]}"


def file_arrival_sensor(workspace: Workspace, source: SourceRef) -> dg.SensorDefinition:

    key = bronze_asset_key(source)

    @dg.sensor(
        name=sensor_name(source),
        minimum_interval_seconds=workspace.settings.automation.file_sensor_interval_s,
        target=dg.AssetSelection.assets(key),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Loads {source.key} when new or changed files match {', '.join(source.spec.extract.paths)}.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> Any:
        try:
            listing = list_files(workspace, source)
        except MissingSecretError as exc:
            return dg.SkipReason(str(exc))
        previous = decode_cursor(context.cursor)
        if context.cursor is None:
            last_load = context.instance.get_latest_materialization_event(key)
            if last_load is not None:
                previous = already_loaded(listing, int(last_load.timestamp * 1e9))
        batch, cursor = new_files(previous, listing, time.time_ns(), int(SETTLE_S * 1e9))
        context.update_cursor(encode_cursor(cursor))
        if not batch:
            return dg.SkipReason(f"no new file among {len(listing)} matched")
        names = ", ".join(os.path.basename(p) for p in batch[:5]) + (", ..." if len(batch) > 5 else "")
        context.log.info(f"{source.key}: {len(batch)} new or changed file(s): {names}")
        return dg.RunRequest(
            run_key=batch_key(source, batch, listing),
            asset_selection=[key],
            tags={
                "foundation/trigger": "new_files",
                "foundation/new_files": str(len(batch)),
                **usecase_tags(source.usecase),
            },
        )

    return _sensor


def file_arrival_sensors(workspace: Workspace) -> list[dg.SensorDefinition]:
    return [file_arrival_sensor(workspace, s) for s in workspace.sources() if s.spec.load.on_new_files]
