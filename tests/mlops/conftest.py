"""A small workspace with a published feature table (a gold Delta snapshot, as `foundation run` writes it) and a
model spec, so the MLOps tests need no dbt build: synthetic trucks whose failures follow a sensor."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from deltalake import write_deltalake

from foundation.core.workspace import Workspace, load_model_specs
from foundation.specs.model import ModelRef

USECASE = "fleet"
TABLE = "features_day"


def synthetic_features(trucks: int = 12, days: int = 60, seed: int = 3) -> pd.DataFrame:
    """One row per truck-day; `failure_soon` is likelier when `temp` runs hot (a learnable, noisy signal)."""
    rng = np.random.default_rng(seed)
    rows = []
    start = date(2026, 1, 1)
    for truck in range(trucks):
        for day in range(days):
            temp = rng.normal(90, 5)
            rows.append(
                {
                    "truck_id": f"T{truck:03d}",
                    "date_day": start + timedelta(days=day),
                    "truck_type": ["van", "rigid", "tractor"][truck % 3],
                    "temp": temp,
                    "vibration": rng.normal(3, 0.5) + (temp - 90) * 0.05,
                    "hours": float(rng.integers(0, 12)),
                    "failure_soon": bool(rng.random() < 1 / (1 + np.exp(-(temp - 96) / 2))),
                    "label_complete": day < days - 7,
                }
            )
    frame = pd.DataFrame(rows)
    frame["date_day"] = pd.to_datetime(frame["date_day"]).dt.date
    return frame


def spec_dict(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "risk",
        "description": "Failure within 7 days, per truck and day.",
        "owner": "ds@example.com",
        "feature_table": TABLE,
        "entity": ["truck_id"],
        "time": "date_day",
        "target": "failure_soon",
        "row_filter": "label_complete",
        "features": {"exclude": ["label_complete"]},
        "split": {"validation_fraction": 0.25, "gap": 7},
        "baseline": {"rule": "temp > 97"},
        "candidates": [
            {"name": "random_forest", "estimator": "random_forest", "params": {"n_estimators": 30, "max_depth": 4}},
            {"name": "logistic_regression", "estimator": "logistic_regression", "params": {"max_iter": 500}},
            {"name": "decision_tree", "estimator": "decision_tree", "params": {"max_depth": 3}},
            {"name": "gradient_boosting", "estimator": "gradient_boosting", "params": {"max_iter": 30}},
        ],
        "selection": {"metric": "f1"},
        "monitoring": {"drift": {"recent": 14}, "performance": {"min_precision": 0.05}},
        "seed": 7,
    }
    spec.update(overrides)
    return spec


class MlWorkspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "foundation.yaml").write_text("state_dir: .foundation\n", encoding="utf-8")
        (root / "usecases" / USECASE / "ml").mkdir(parents=True, exist_ok=True)
        (root / "usecases" / USECASE / "usecase.yaml").write_text(
            "title: Fleet\ndescription: Trucks that break down.\nowner: ops@example.com\n", encoding="utf-8"
        )

    @property
    def workspace(self) -> Workspace:
        return Workspace.open(self.root)

    def publish(self, frame: pd.DataFrame, table: str = TABLE) -> None:
        uri = f"{self.workspace.lakehouse_root}/gold/{USECASE}/{table}"
        write_deltalake(uri, frame, mode="overwrite", schema_mode="overwrite")

    def write_spec(self, spec: dict[str, Any] | str, name: str = "risk") -> Path:
        path = self.root / "usecases" / USECASE / "ml" / f"{name}.yaml"
        path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return path

    def ref(self, name: str = "risk") -> ModelRef:
        scan = load_model_specs(self.root)
        assert scan.ok, [e.format() for e in scan.errors]
        return next(r for r in scan.models if r.spec.name == name)


@pytest.fixture
def ml_workspace(tmp_path: Path) -> MlWorkspace:
    return MlWorkspace(tmp_path / "ws")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One training run on the synthetic table (MLflow sqlite store + registry): shared by a module's tests."""
    from mlops.pipeline import run_training

    kit = MlWorkspace(tmp_path_factory.mktemp("ml") / "ws")
    kit.publish(synthetic_features())
    kit.write_spec(spec_dict())
    report = run_training(kit.workspace, kit.ref())
    return {"kit": kit, "report": report}
