"""`foundation check` reads scikit-learn's classes from a generated table instead of importing scikit-learn: the table
must say what the installed scikit-learn says, and the check must still catch what importing caught."""

from __future__ import annotations

import importlib

from foundation.specs.sklearn_catalog import CATALOG_PATH, catalog, generate, render


def test_the_table_is_the_installed_scikit_learn() -> None:
    assert CATALOG_PATH.read_text(encoding="utf-8") == render(generate()), (
        "scikit-learn moved: run `python -m foundation.specs.sklearn_catalog` and commit the table"
    )


def test_every_path_in_the_table_is_the_class_users_write() -> None:
    table = catalog()
    assert table["sklearn.ensemble.RandomForestClassifier"].predict_proba
    assert "n_estimators" in table["sklearn.ensemble.RandomForestClassifier"].params
    assert table["sklearn.linear_model.Ridge"].kind == "regressor"
    for path, facts in table.items():
        module, _, name = path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert sorted(cls._get_param_names()) == list(facts.params), path
        assert hasattr(cls, "predict_proba") == facts.predict_proba, path
