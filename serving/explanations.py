"""`explain: true` on `/predict`: each prediction's top feature contributions (mlops.explain), for linear and tree
models; any other model answers 422 before it scores."""

from __future__ import annotations

from typing import Any

from mlops.explain import ExplainUnsupported, explain_rows, explainable, top_contributions
from serving.errors import InvalidInput
from serving.loaded_models import ServedModel


def _refused(message: str) -> InvalidInput:
    return InvalidInput([{"field": "explain", "message": message, "type": "explain_unsupported"}])


def check_explainable(model: ServedModel) -> None:
    """422 unless the served model is a scikit-learn pipeline whose estimator mlops.explain can decompose."""
    if model.flavor != "sklearn":
        raise _refused(f"{model.name} v{model.version} is a {model.flavor} model: explanations need a scikit-learn one")
    reason = explainable(model.model)
    if reason is not None:
        raise _refused(f"{model.name} v{model.version} cannot be explained: {reason}")


def explained(
    model: ServedModel, rows: list[dict[str, Any]], predictions: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The predictions with their bias and top contributions, and how to read them (method, unit)."""
    frame = model.frame(rows)
    try:
        explanation = explain_rows(model.model, frame)
    except ExplainUnsupported as exc:
        raise _refused(f"{model.name} v{model.version} cannot be explained: {exc}") from None
    tops = top_contributions(explanation, frame)
    answered = [
        {**prediction, "bias": round(float(bias), 6), "contributions": top}
        for prediction, bias, top in zip(predictions, explanation.bias, tops, strict=True)
    ]
    return answered, {"method": explanation.method, "unit": explanation.unit}
