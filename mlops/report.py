"""The comparison table (the issue's reference output) as rows, markdown and PNG; confusion-matrix plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foundation.specs.model import SelectionSpec
from mlops.metrics import Evaluation

ROWS = (
    ("True Negatives", "tn"),
    ("False Negatives", "fn"),
    ("True Positives", "tp"),
    ("False Positives", "fp"),
    ("Precision", "precision"),
    ("Recall", "recall"),
    ("F1-Score", "f1"),
)


def _fmt(value: float | int | None, money: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if money:
        return f"{value:,.0f}"
    return f"{value:.2f}"


# Regression: the errors of each model's values against the actual ones (lower is better).
ERROR_ROWS = (
    ("Rows", "rows"),
    ("MAE", "mae"),
    ("RMSE", "rmse"),
    ("MAPE", "mape"),
    ("Bias (mean predicted - actual)", "bias"),
)


def business_label(selection: SelectionSpec) -> str | None:
    if selection.lower_is_better:
        # (the CLI and the dashboard rebuild the selection from a training report: its currency comes as `cost`)
        cost = selection.error_cost or selection.cost
        return f"Cost of the errors ({cost.currency})" if cost else None
    return f"Savings ({selection.cost.currency})" if selection.cost else None


def _cell(key: str, value: float | int | None, money: bool) -> str:
    if key == "mape" and value is not None:
        return f"{value:.1%}"
    return _fmt(value, money)


def comparison_rows(comparison: dict[str, dict], selection: SelectionSpec) -> list[list[str]]:
    """Rows of the table: one per metric, one column per model ('As is' first). `comparison`: name -> metrics."""
    regression = selection.lower_is_better
    metric_rows = ERROR_ROWS if regression else ROWS
    money_key = "cost" if regression else "savings"
    rows = [[label, *(_cell(key, m[key], False) for m in comparison.values())] for label, key in metric_rows]
    label = business_label(selection)
    if label:
        rows.append([label, *(_fmt(m[money_key], money=True) for m in comparison.values())])
    metric = selection.metric + (f" (precision >= {selection.min_precision})" if selection.min_precision else "")
    money = selection.metric in ("savings", "cost")
    score_key = "mape" if selection.metric == "mape" else "score"
    rows.append([f"Selection: {metric}", *(_cell(score_key, m["score"], money) for m in comparison.values())])
    if any(m.get("fold_spread") for m in comparison.values()):  # K-fold: how much the folds disagree, per metric
        labels = {key: name for name, key in metric_rows}
        labels |= {money_key: label or money_key.title(), "score": f"Selection: {metric}"}
        for key, name in labels.items():
            if any(key in (m.get("fold_spread") or {}) for m in comparison.values()):
                money_row = key == money_key or (key == "score" and money)
                rows.append(
                    [f"{name}, per fold: mean ± spread", *(_spread(m, key, money_row) for m in comparison.values())]
                )
    return rows


def _spread(metrics: dict, key: str, money: bool) -> str:
    spread = (metrics.get("fold_spread") or {}).get(key)
    if spread is None:
        return "-"
    return f"{_fmt(spread[0], money)} ± {_fmt(spread[1], money)}"


def comparison_markdown(comparison: dict[str, dict], selection: SelectionSpec, title: str = "") -> str:
    header = ["", *comparison]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(comparison, selection)]
    return "\n".join(lines) + "\n"


def as_dicts(comparison: dict[str, Evaluation]) -> dict[str, dict]:
    return {name: evaluation.to_dict() for name, evaluation in comparison.items()}


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend (no display on a server)."""
    import matplotlib  # lazy: +0.35 s; the definitions and the dashboards import this module for its tables

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as above

    return plt


def comparison_png(comparison: dict[str, dict], selection: SelectionSpec, path: Path, title: str) -> Path:
    plt = _pyplot()
    rows = comparison_rows(comparison, selection)
    fig, ax = plt.subplots(figsize=(2 + 1.8 * len(comparison), 0.45 * (len(rows) + 2)))
    ax.axis("off")
    table = ax.table(
        cellText=[r[1:] for r in rows], rowLabels=[r[0] for r in rows], colLabels=list(comparison), loc="center"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_png(comparison: dict[str, dict], path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(comparison), figsize=(2.6 * len(comparison), 2.8), squeeze=False)
    for ax, (name, m) in zip(axes[0], comparison.items(), strict=True):
        cells = [[m["tn"], m["fp"]], [m["fn"], m["tp"]]]
        ax.imshow(cells, cmap="Blues")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, str(cells[i][j]), ha="center", va="center", fontsize=11)
        ax.set_xticks([0, 1], ["no alert", "alert"])
        ax.set_yticks([0, 1], ["no event", "event"])
        ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def importance_figure(importances: list[dict[str, Any]], title: str, scoring: str = "average_precision") -> Any:
    """Horizontal bars of the permutation importances (mean drop, spread as error bars), largest on top."""
    plt = _pyplot()
    shown = importances[:20][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(shown) + 1.2))
    ax.barh([r["feature"] for r in shown], [r["mean"] for r in shown], xerr=[r["std"] for r in shown], color="#1565c0")
    ax.set_xlabel(f"drop in validation {scoring.removeprefix('neg_').replace('_', ' ')} score when shuffled")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def close_figure(figure: Any) -> None:
    """Release a figure pyplot keeps open (a training run logs one per candidate)."""
    _pyplot().close(figure)
