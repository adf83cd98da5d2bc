"""The `.env` line that points `dagster dev -f definitions.py` at the workspace's instance (pure, then on disk)."""

from __future__ import annotations

from pathlib import Path

from foundation.core.workspace import Workspace
from foundation.dagster_defs.dev_env import MARK, with_dagster_home, write_dagster_env
from foundation.dagster_defs.instance import prepare_home


def test_the_line_is_added_then_kept_then_moved_with_the_home() -> None:
    first = with_dagster_home("API_TOKEN=x\n", Path("/ws/.foundation/dagster"))
    assert first == f"API_TOKEN=x\n{MARK}\nDAGSTER_HOME=/ws/.foundation/dagster\n"
    assert with_dagster_home(first, Path("/ws/.foundation/dagster")) is None  # already right: no write
    moved = with_dagster_home(first, Path("/elsewhere/dagster"))
    assert moved == f"API_TOKEN=x\n{MARK}\nDAGSTER_HOME=/elsewhere/dagster\n"


def test_a_dagster_home_set_by_hand_is_left_alone() -> None:
    assert with_dagster_home("export DAGSTER_HOME=/opt/dagster\n", Path("/ws/.foundation/dagster")) is None


def test_preparing_the_instance_writes_the_env_file(tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("state_dir: .foundation\n", encoding="utf-8")
    (tmp_path / ".env").write_text("OTHER=1\n", encoding="utf-8")
    home = prepare_home(Workspace.open(tmp_path))
    assert (tmp_path / ".env").read_text(encoding="utf-8").splitlines() == ["OTHER=1", MARK, f"DAGSTER_HOME={home}"]
    assert write_dagster_env(tmp_path, home)  # again: unchanged, and says so
    assert (tmp_path / ".env").read_text(encoding="utf-8").count("DAGSTER_HOME") == 1


def test_a_workspace_that_cannot_be_written_is_not_an_error(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()  # not a file: reading it fails as a read-only or odd folder would
    assert write_dagster_env(tmp_path, tmp_path / "home") is False
