"""The KPI catalogue imports the model KPIs' SQL on every `foundation run` (its publish step): it must not pay
scikit-learn's and scipy's import (3 s measured) for SQL text."""

import subprocess
import sys


def test_the_model_kpis_sql_does_not_import_scikit_learn() -> None:
    code = (
        "import sys; import mlops.kpis, mlops.inference; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy', 'mlflow'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_loading_the_dagster_definitions_does_not_import_pandas_scikit_learn_or_mlflow() -> None:
    """Every `foundation run`, `ui` and daemon tick loads the definitions: the ML steps import what they need when
    they run (pandas 0.35 s, scikit-learn 1 s, mlflow 2 s measured), not when the asset graph is built."""
    code = (
        "import sys; import foundation.dagster_defs.ml_assets, foundation.dagster_defs.dbt_assets; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'sklearn', 'scipy', 'mlflow'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
