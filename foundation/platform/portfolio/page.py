"""The portfolio as one self-contained HTML page (matrix inlined), for `--out DIR` and the API's `/portfolio`."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, select_autoescape

from foundation.platform.portfolio.report import PortfolioEntry

_templates = Environment(
    loader=PackageLoader("foundation.platform.portfolio", "templates"), autoescape=select_autoescape()
)


def portfolio_html(
    entries: list[PortfolioEntry],
    png: bytes,
    threshold: float,
    generated_at: datetime | None = None,
    nav_base: str | None = None,
) -> str:
    """`nav_base`: the root path of the API that serves the page, to link its other pages (None: a file alone)."""
    return _templates.get_template("portfolio.html").render(
        nav_base=nav_base,
        entries=[e.to_dict() for e in entries],
        png_base64=base64.b64encode(png).decode("ascii"),
        threshold=threshold,
        generated_at=(generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
    )
