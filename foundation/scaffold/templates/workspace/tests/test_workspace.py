"""Every YAML of the platform validates, and the Dagster definitions load (what CI runs on each change)."""

from pathlib import Path

from foundation.core.workspace import Workspace
from foundation.platform.check import check_workspace

ROOT = Path(__file__).resolve().parents[1]


def test_every_yaml_is_valid() -> None:
    errors = [e for e in check_workspace(Workspace.open(ROOT)) if e.severity == "error"]
    assert not errors, "\n".join(e.format(relative_to=ROOT) for e in errors)
