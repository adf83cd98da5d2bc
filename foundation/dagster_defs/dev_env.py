"""`dagster dev -f definitions.py` on the workspace's instance: the `DAGSTER_HOME` line of the workspace's `.env`.

`dagster dev` reads a `.env` file in the folder it starts from before it chooses its instance
(dagster/_cli/utils.py, `get_possibly_temporary_instance_for_cli`): with `DAGSTER_HOME` there, it opens the same
instance `foundation` records its runs in, instead of a temporary one that starts with no run. Every command that
prepares the instance under the state folder writes the line (an absolute path: the workspace may be opened from
anywhere); a deployment's own `dagster.home` is left to its environment. Other lines of the file are kept; a
`DAGSTER_HOME` someone set by hand is theirs, and is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_FILE = ".env"
MARK = "# written by foundation: `dagster dev -f definitions.py` opens this workspace's Dagster instance"
VARIABLE = "DAGSTER_HOME"


def with_dagster_home(text: str, home: Path) -> str | None:
    """Pure: the `.env` text with foundation's DAGSTER_HOME line set to `home`; None when nothing is to change (the
    line is already right, or DAGSTER_HOME was set by hand)."""
    lines = text.splitlines()
    wanted = [MARK, f"{VARIABLE}={home}"]
    for i, line in enumerate(lines):
        if line.split("=", 1)[0].strip().removeprefix("export ").strip() != VARIABLE:
            continue
        if i == 0 or lines[i - 1] != MARK:
            return None  # the user's own setting
        if line == wanted[1]:
            return None
        return "\n".join([*lines[: i - 1], *wanted, *lines[i + 1 :]]) + "\n"
    return "\n".join([*lines, *wanted]) + "\n"


def write_dagster_env(root: Path, home: Path) -> bool:
    """Set foundation's DAGSTER_HOME line in `<root>/.env` (replaced atomically; other lines kept). Returns whether
    the file says so now; a workspace folder that cannot be written (a read-only image) is not an error: the line
    only serves `dagster dev`, and every foundation command passes its instance itself."""
    path = root / ENV_FILE
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        updated = with_dagster_home(current, home.absolute())
        if updated is not None:
            tmp = path.with_name(f".{ENV_FILE}.{os.getpid()}.tmp")
            tmp.write_text(updated, encoding="utf-8")
            tmp.replace(path)
    except OSError:
        return False
    return with_dagster_home(path.read_text(encoding="utf-8"), home.absolute()) is None
