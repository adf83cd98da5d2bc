"""How foundation starts dbt: the executable, its environment, `dbt parse`, and the errors of its JSON log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from foundation.engine.dbt.framework_macros import FRAMEWORK_MACROS_ENV, framework_macros_dir
from foundation.engine.dbt.paths import DbtPaths


def dbt_executable() -> str:
    """The `dbt` next to this interpreter (a venv's bin is not always on PATH), else whatever PATH has."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_env(paths: DbtPaths) -> dict[str, str]:
    return {
        **os.environ,
        "DBT_PROFILES_DIR": str(paths.profiles_dir),
        "DBT_TARGET_PATH": str(paths.target_dir),
        "DBT_LOG_PATH": str(paths.log_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROJECT_DIR": str(paths.project_dir),
        FRAMEWORK_MACROS_ENV: str(framework_macros_dir()),
    }


def dbt_parse(paths: DbtPaths) -> subprocess.CompletedProcess[str]:
    """`dbt parse` of the project (it writes the manifest), logging JSON lines for `dbt_error_lines`."""
    return subprocess.run(
        [dbt_executable(), "parse", "--project-dir", str(paths.project_dir), "--log-format", "json"],
        env=dbt_env(paths),
        capture_output=True,
        text=True,
        cwd=paths.project_dir,
    )


def dbt_error_lines(json_log: str) -> str:
    """The error messages of a dbt run logged with --log-format json (the whole log when none is found)."""
    messages = []
    for line in json_log.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        info = event.get("info", {})
        if info.get("level") == "error":
            messages.append(info.get("msg", ""))
    return "\n".join(m for m in messages if m) or json_log[-3000:]
