"""Settings: defaults < foundation.yaml < FOUNDATION_* environment variables; paths resolve in the workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.core.workspace import Workspace


def test_defaults_keep_state_under_one_folder(tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path)
    state = workspace.state_dir
    assert state == tmp_path / ".foundation"
    assert Path(workspace.lakehouse_root).is_relative_to(state)
    assert Path(workspace.resolve(workspace.settings.duckdb.path)).is_relative_to(state)
    assert workspace.settings.mlflow.tracking_uri == "sqlite:///.foundation/mlflow.db"


def test_yaml_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "foundation.yaml").write_text("lakehouse: {root: lake}\napi: {port: 9000}\n")
    workspace = Workspace.open(tmp_path)
    assert workspace.lakehouse_root == str(tmp_path / "lake")
    assert workspace.settings.api.port == 9000
    monkeypatch.setenv("FOUNDATION_LAKEHOUSE__ROOT", "/data/lake")
    monkeypatch.setenv("FOUNDATION_API__PORT", "9100")
    workspace = Workspace.open(tmp_path)
    assert workspace.lakehouse_root == "/data/lake"
    assert workspace.settings.api.port == 9100
    assert workspace.bronze_uri("uc", "src") == "/data/lake/bronze/uc/src"


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "foundation.yaml").write_text("lakehouse: {rot: lake}\n")
    with pytest.raises(ValueError, match="rot"):
        Workspace.open(tmp_path)
