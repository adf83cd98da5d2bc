"""What `foundation check` needs to know of scikit-learn's estimators, without importing scikit-learn (1.5 s).

`sklearn_estimators.json` maps each public class path (`sklearn.ensemble.RandomForestClassifier`) to its kind
(`classifier` or `regressor`), whether it has `predict_proba`, and its hyper-parameter names. It is generated from the
installed scikit-learn; a test regenerates it and fails when the pin moved: then run
`python -m foundation.specs.sklearn_catalog` and commit the file.
"""

from __future__ import annotations

import importlib
import json
from functools import cache
from pathlib import Path
from typing import NamedTuple

CATALOG_PATH = Path(__file__).with_name("sklearn_estimators.json")


class EstimatorFacts(NamedTuple):
    kind: str  # classifier | regressor
    predict_proba: bool
    params: tuple[str, ...]


@cache
def catalog() -> dict[str, EstimatorFacts]:
    data = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    return {path: EstimatorFacts(f["kind"], f["predict_proba"], tuple(f["params"])) for path, f in data.items()}


def public_path(cls: type) -> str:
    """The path users write: `sklearn.ensemble._forest.RandomForestClassifier` -> `sklearn.ensemble.<name>`."""
    parts = cls.__module__.split(".")
    for end in range(1, len(parts) + 1):
        module = ".".join(parts[:end])
        if not parts[end - 1].startswith("_") and getattr(importlib.import_module(module), cls.__name__, None) is cls:
            return f"{module}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__name__}"


def generate() -> dict[str, EstimatorFacts]:
    """The catalogue of the installed scikit-learn (what the test compares the file with)."""
    from sklearn.utils import all_estimators  # lazy: only to regenerate the table

    found: dict[str, EstimatorFacts] = {}
    for kind in ("classifier", "regressor"):
        for _, cls in all_estimators(type_filter=kind):
            params = tuple(sorted(cls._get_param_names()))
            found[public_path(cls)] = EstimatorFacts(kind, hasattr(cls, "predict_proba"), params)
    return dict(sorted(found.items()))


def render(found: dict[str, EstimatorFacts]) -> str:
    """One line per class, so that a scikit-learn upgrade reads as a small diff."""
    lines = [f"  {json.dumps(path)}: {json.dumps(facts._asdict())}" for path, facts in found.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


if __name__ == "__main__":
    CATALOG_PATH.write_text(render(generate()), encoding="utf-8")
    print(f"wrote {CATALOG_PATH}")
