"""A model spec's candidates as classes: found by their dotted path and checked to be classifiers (regressors for
`task: regression`).

`check_estimators` looks scikit-learn's classes up in a generated table (`sklearn_catalog`: no 1.5 s import in
`foundation check`) and imports any other class (the team's own), so call it where that cost is expected.
"""

from __future__ import annotations

import difflib
import importlib
import inspect

from foundation.specs.errors import SpecError
from foundation.specs.model import ModelRef
from foundation.specs.sklearn_catalog import EstimatorFacts, catalog


def import_class(path: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def _estimator_error(ref: ModelRef, i: int, message: str, hint: str) -> SpecError:
    return SpecError(ref.path, ref.line("candidates", i, "estimator"), f"candidates[{i}].estimator", message, hint)


def _unknown_params(ref: ModelRef, i: int, known: list[str], class_name: str) -> list[SpecError]:
    errors: list[SpecError] = []
    for name in ref.spec.candidates[i].params:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            errors.append(
                SpecError(
                    ref.path,
                    ref.line("candidates", i, "params", name),
                    f"candidates[{i}].params.{name}",
                    f"{class_name} has no hyper-parameter {name!r}",
                    f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}",
                )
            )
    return errors


def _imported_facts(ref: ModelRef, i: int, path: str) -> EstimatorFacts | SpecError:
    """A class outside the table (the team's own, or a wrong path): imported, to say what it is or why it fails."""
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        message = f"candidate class {path!r} does not exist: cannot import module {module_name!r} ({exc})"
        return _estimator_error(ref, i, message, "install the package, or fix the module path")
    cls = getattr(module, class_name, None)
    if cls is None:
        names = [n for n, v in vars(module).items() if inspect.isclass(v)]
        close = difflib.get_close_matches(class_name, names, n=1, cutoff=0.6)
        message = f"candidate class {path!r} does not exist: {module_name} has no {class_name!r}"
        hint = f"did you mean {module_name}.{close[0]}?" if close else "check the class name"
        return _estimator_error(ref, i, message, hint)
    if not inspect.isclass(cls) or not hasattr(cls, "get_params"):
        return EstimatorFacts("other", False, ())
    params = tuple(sorted(cls().get_params(deep=False)))
    if hasattr(cls, "predict_proba"):
        return EstimatorFacts("classifier", True, params)
    return EstimatorFacts("regressor", False, params) if hasattr(cls, "predict") else EstimatorFacts("other", False, ())


def check_estimators(ref: ModelRef) -> list[SpecError]:
    """Each candidate's class must exist, be a classifier with predict_proba (a regressor for `task: regression`),
    and know its hyper-parameters."""
    errors: list[SpecError] = []
    regression = ref.spec.is_regression
    for i, candidate in enumerate(ref.spec.candidates):
        path = candidate.class_path
        facts = catalog().get(path) or _imported_facts(ref, i, path)
        if isinstance(facts, SpecError):
            errors.append(facts)
        elif regression and facts.kind != "regressor":
            message = f"{path!r} is not a scikit-learn style regressor, and the spec's task is regression"
            errors.append(
                _estimator_error(ref, i, message, "use a regressor (e.g. sklearn.ensemble.ExtraTreesRegressor)")
            )
        elif not regression and not facts.predict_proba:
            message = f"{path!r} is not a scikit-learn style classifier with predict_proba"
            errors.append(_estimator_error(ref, i, message, "use a classifier class (fit, predict_proba, get_params)"))
        else:
            errors.extend(_unknown_params(ref, i, list(facts.params), path.rpartition(".")[2]))
    return errors
