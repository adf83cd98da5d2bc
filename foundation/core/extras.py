"""Optional dependencies: what only a deployment needs is an extra, named when a feature asks for it."""

from __future__ import annotations

import importlib.util

# extra -> the modules it installs (pyproject.toml [project.optional-dependencies])
EXTRAS: dict[str, tuple[str, ...]] = {
    "postgres": ("dagster_postgres", "psycopg2", "adbc_driver_postgresql"),
}


class MissingExtraError(RuntimeError):
    """A feature was asked for whose optional dependency is not installed."""


def missing_extra(module: str, extra: str, feature: str) -> MissingExtraError | None:
    """The error to raise when `module` (installed by `extra`) is absent, else None; `feature` says what needed it."""
    if importlib.util.find_spec(module) is not None:
        return None
    return MissingExtraError(
        f"{feature} needs {module}, which the optional dependencies '{extra}' install: "
        f"pip install 'data-foundation[{extra}]' (or uv add 'data-foundation[{extra}]')"
    )


def require_extra(module: str, extra: str, feature: str) -> None:
    error = missing_extra(module, extra, feature)
    if error is not None:
        raise error
