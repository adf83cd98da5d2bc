"""The value/complexity matrix as a PNG (matplotlib, headless Agg backend): one dot per scored use case."""

from __future__ import annotations

import io

from foundation.platform.portfolio.report import PortfolioEntry
from foundation.platform.portfolio.scoring import LOW_HANGING_FRUIT, QUICK_WINS, STRATEGIC_BETS, TO_AVOID

PHASE_COLOURS = {
    "ideation": "#9e9e9e",
    "sprint0": "#42a5f5",
    "development": "#ffa726",
    "industrialisation": "#ab47bc",
    "run": "#2e7d32",
    "-": "#616161",
}


def matrix_png(entries: list[PortfolioEntry], threshold: float, dpi: int = 110) -> bytes:
    """Complexity on x (easy left), value on y (high up); quadrants split at `threshold`; colour = detected phase."""
    # Figure without pyplot: no global state, so API threads can draw at once (matplotlib's advice for servers).
    from matplotlib.figure import Figure  # lazy: matplotlib (about 1 s): only drawing needs it

    fig = Figure(figsize=(7.5, 6), dpi=dpi)
    ax = fig.subplots()
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.axvline(threshold, color="#bbb", lw=1)
    ax.axhline(threshold, color="#bbb", lw=1)
    ax.fill_between([0, threshold], threshold, 100, color="#e8f5e9", zorder=0)
    ax.fill_between([threshold, 100], 0, threshold, color="#ffebee", zorder=0)
    style = {"fontsize": 11, "color": "#555", "weight": "bold", "alpha": 0.8}
    ax.text(2, 97, QUICK_WINS, va="top", **style)
    ax.text(98, 97, STRATEGIC_BETS, va="top", ha="right", **style)
    ax.text(2, 3, LOW_HANGING_FRUIT, va="bottom", **style)
    ax.text(98, 3, TO_AVOID, va="bottom", ha="right", **style)
    seen_phases: set[str] = set()
    for entry in entries:
        if not entry.scores.scored:
            continue
        x, y = entry.scores.complexity, entry.scores.value
        colour = PHASE_COLOURS.get(entry.phase, "#616161")
        label = entry.phase if entry.phase not in seen_phases else None
        seen_phases.add(entry.phase)
        ax.scatter([x], [y], s=140, color=colour, edgecolor="black", zorder=3, label=label)
        ax.annotate(entry.name, (x, y), xytext=(7, 7), textcoords="offset points", fontsize=9, zorder=4)
    unscored = [e.name for e in entries if not e.scores.scored]
    if unscored:
        shown = ", ".join(unscored[:6]) + (" ..." if len(unscored) > 6 else "")
        fig.text(0.01, 0.01, f"unscored (incomplete sheet): {shown}", fontsize=8, color="#b26a00")
    ax.set_xlabel("anticipated complexity (0-100)")
    ax.set_ylabel("anticipated value (0-100)")
    ax.set_title("Use-case portfolio: value / complexity")
    if seen_phases:
        ax.legend(title="phase", loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, title_fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()
