#!/usr/bin/env bash
# Install everything the project needs on a fresh machine: uv (from PyPI) and the locked environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never   # use the machine's Python 3.11; never download an interpreter
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv sync --frozen --quiet "$@"
