"""How the CLI is put together: every command a function importable by name, and a start-up that stays light.

The start-up test runs the real `foundation` in a fresh interpreter and looks at what it imported: dagster, dbt
and mlflow take seconds to import, so `--help` and `sources list` must never pull them in (issue 15); `check` and
`models list` must not import scikit-learn, MLflow or pandas (issue 18: 1.5 s, 2 s and 0.4 s of their start-up).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from foundation.cli.main import app
from foundation.core.settings_profiles import PROFILE_ENV
from foundation.core.workspace import WORKSPACE_ENV

HEAVY = ("dagster", "dagster_dbt", "dbt", "mlflow")
REPO = Path(__file__).resolve().parents[2]

# Runs the CLI in this interpreter, then prints which top-level packages it imported (on stderr: stdout is the CLI's).
PROBE = """
import json, sys
sys.argv = ["foundation", *sys.argv[1:]]
from foundation.cli.main import app
from foundation.core.settings_profiles import PROFILE_ENV
from foundation.core.workspace import WORKSPACE_ENV
try:
    app()
except SystemExit as exit:
    code = exit.code
else:
    code = 0
sys.stderr.write("\\nMODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})) + " " + str(code) + "\\n")
"""


def _commands(group: typer.core.TyperGroup, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        found[prefix + name] = command
        if isinstance(command, typer.core.TyperGroup):
            found.update(_commands(command, f"{prefix}{name} "))
    return found


def test_every_command_is_a_module_level_function_of_a_command_module() -> None:
    commands = _commands(typer.main.get_group(app))
    assert {"check", "sources list", "ingest", "run", "demo serve", "kpi show", "usecase new", "backfill"} <= set(
        commands
    )
    for name, command in commands.items():
        callback = command.callback
        if callback is None:  # a group without a callback of its own
            continue
        function = getattr(callback, "__wrapped__", callback)
        module = function.__module__
        assert module.startswith("foundation.cli.") and module.endswith("_command"), (name, module)
        assert "<locals>" not in function.__qualname__, f"`foundation {name}` is defined inside a function"
        assert getattr(importlib.import_module(module), function.__name__) is function, name


def _imported(args: list[str], cwd: Path) -> tuple[set[str], int, str]:
    # the workspace is the folder it runs in: not one that an in-process CLI test left in the environment
    env = {k: v for k, v in os.environ.items() if k not in (WORKSPACE_ENV, PROFILE_ENV)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    output, _, line = result.stderr.rpartition("\nMODULES ")
    modules, code = line.rsplit(" ", 1)
    return set(json.loads(modules)), int(code), output


@pytest.mark.parametrize("args", [["--help"], ["sources", "list"], ["sources", "list", "--json"]])
def test_help_and_sources_list_do_not_import_dagster_dbt_or_mlflow(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n")
    sources = tmp_path / "usecases" / "plant" / "sources"
    sources.mkdir(parents=True)
    (sources / "readings.yaml").write_text(
        "name: readings\ndescription: Sensor readings of the plant\nowner: data@example.com\nschedule: '@daily'\n"
        "extract: {type: csv, path: landing/*.csv}\n"
    )
    modules, code, stderr = _imported(args, tmp_path)
    assert code == 0, stderr
    assert "typer" in modules and "foundation" in modules  # the probe saw the CLI run
    assert not modules & set(HEAVY), f"`foundation {' '.join(args)}` imported {sorted(modules & set(HEAVY))}"


def test_check_does_not_import_scikit_learn_mlflow_or_pandas() -> None:
    """The repository's workspace: two model specs whose scikit-learn candidates and hyper-parameters are checked."""
    modules, code, stderr = _imported(["check", "--json"], REPO)
    assert code == 0, stderr
    assert "foundation" in modules
    heavy = modules & {"sklearn", "scipy", "mlflow", "pandas", *HEAVY}
    assert not heavy, f"`foundation check` imported {sorted(heavy)}"
