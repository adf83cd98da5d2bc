"""Asset keys that several definition modules name (kept apart so that they import no definitions module)."""

from __future__ import annotations

import dagster as dg

from foundation.core.workspace import SourceRef


def bronze_asset_key(source: SourceRef) -> dg.AssetKey:
    return dg.AssetKey([source.usecase, "bronze", source.name])
