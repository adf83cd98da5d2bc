"""A KPI's history as an inline SVG line chart, rendered on the server (no JavaScript, no CDN)."""

from __future__ import annotations

from html import escape

from kpi_catalog.catalogue import Point

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 36


def _fmt(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"


def history_svg(points: list[Point], target: float | None, alert: float | None, unit: str, label: str) -> str:
    """Line of the values over time, with the target (green, dashed) and alert (red, dotted) lines."""
    values = [p.value for p in points if p.value is not None]
    if not values:
        return (
            f'<svg class="chart" role="img" aria-label="{escape(label)}: no data" width="{WIDTH}" height="60">'
            '<text x="8" y="32">no data published for this grain yet</text></svg>'
        )
    lines = [v for v in (target, alert) if v is not None]
    low, high = min(values + lines), max(values + lines)
    if high == low:
        low, high = low - 1.0, high + 1.0
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (len(points) - 1) if len(points) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - low) / (high - low))

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)} history" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
    ]
    for tick in (low + pad, (low + high) / 2, high - pad):
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11">{_fmt(tick)}</text>')
    for value, colour, dash, name in ((target, "#2e7d32", "6 4", "target"), (alert, "#c62828", "2 3", "alert")):
        if value is not None:
            parts.append(
                f'<line class="{name}" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                f'stroke="{colour}" stroke-dasharray="{dash}"><title>{name} {_fmt(value)} {escape(unit)}</title></line>'
            )
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, point in enumerate(points):
        if point.value is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        segment.append(f"{x(i):.1f},{y(point.value):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        parts.append(
            f'<polyline class="series" fill="none" stroke="#1565c0" stroke-width="2" points="{" ".join(seg)}"/>'
        )
    for i, point in enumerate(points):
        if point.value is not None:
            parts.append(
                f'<circle class="point" cx="{x(i):.1f}" cy="{y(point.value):.1f}" r="3" fill="#1565c0">'
                f"<title>{point.period.isoformat()}: {_fmt(point.value)} {escape(unit)}</title></circle>"
            )
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 12}" font-size="11">{points[0].period.isoformat()}</text>')
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 12}" text-anchor="end" font-size="11">'
        f"{points[-1].period.isoformat()}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
