#!/usr/bin/env bash
# Install everything the project needs on a fresh machine: uv (from PyPI) and the locked environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never   # use the machine's Python 3.11; never download an interpreter
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
# Where Python may not cache bytecode (PYTHONDONTWRITEBYTECODE, common in containers and CI images), every process
# would compile every module it imports from source: `foundation run` on the demo spent 8 s more doing it, and each
# test's subprocess too. Compile once at install instead (uv skips files already compiled on the next sync).
if [ -n "${PYTHONDONTWRITEBYTECODE:-}" ]; then
  export UV_COMPILE_BYTECODE=1
fi
uv sync --frozen --quiet "$@"
if [ -n "${PYTHONDONTWRITEBYTECODE:-}" ]; then
  # The project itself is installed editable (not in site-packages): compile its packages too.
  PYTHONDONTWRITEBYTECODE= .venv/bin/python -m compileall -q -j 0 foundation kpi_catalog mlops serving >/dev/null
fi
