"""`html_table` extracts: one table of a web page (http(s) URL or local file) staged as a Parquet file of text.

Why selectolax (Lexbor engine): it parses HTML the way browsers do (HTML5 tree building: implicit <tbody>,
unclosed <td>/<tr>, stray tags), has CSS selectors built in, is a single small wheel with no dependencies, and parses
fast. pandas.read_html would pull pandas (slow to import) onto the ingest path and hides how spans are resolved.

Every cell lands as trimmed text (empty = null); the declared `columns:` type them in the ingest plan, so a cell
that does not read as its type is quarantined with the reason, like a bad CSV value.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.parquet as pq

from foundation.engine.connectors.staging import ExtractError, StagedExtract, StageRequest
from foundation.specs.secrets import SECRET_KEY_RE, MissingSecretError
from foundation.specs.secrets import resolve as resolve_env
from foundation.specs.source import HtmlTableExtract

MAX_COLSPAN, MAX_ROWSPAN = 1000, 65534  # the HTML standard's own limits
META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
WHITESPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class Page:
    html: str
    origin: str  # the URL or file path, without credentials


def safe_origin(url: str) -> str:
    """A URL fit for lineage and messages: no password in it, secret-looking query values masked."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("http"):
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode([(k, "***" if SECRET_KEY_RE.search(k) else v) for k, v in parse_qsl(parts.query)])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _decode(body: bytes, charset: str | None) -> str:
    if charset is None:
        declared = META_CHARSET_RE.search(body[:4096])
        charset = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def fetch_page(request: StageRequest, extract: HtmlTableExtract) -> Page:
    """The page's text: GET an http(s) URL, or read a file (relative to the workspace)."""
    try:
        url = resolve_env(extract.url, f"{request.source_key} extract.url").strip()
        headers = {k: resolve_env(v, f"{request.source_key} extract.headers.{k}") for k, v in extract.headers.items()}
    except MissingSecretError as exc:
        hint = f" {extract.help}" if extract.help else ""
        raise ExtractError(f"{request.source_key}: {exc}.{hint}") from None
    if url.startswith(("http://", "https://")):
        origin = safe_origin(url)
        http_request = urllib.request.Request(url, headers={"User-Agent": "data-foundation", **headers})
        try:
            with urllib.request.urlopen(http_request, timeout=extract.timeout) as response:
                return Page(_decode(response.read(), response.headers.get_content_charset()), origin)
        except urllib.error.HTTPError as exc:
            raise ExtractError(
                f"{request.source_key}: GET {origin} answered HTTP {exc.code} {exc.reason}: check extract.url"
                + (" and the credentials in extract.headers" if exc.code in (401, 403) else "")
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            hint = f". {extract.help}" if extract.help else ""
            raise ExtractError(
                f"{request.source_key}: cannot fetch {origin} ({reason}): check that the server is up and the URL "
                f"is right, or raise extract.timeout (now {extract.timeout:g}s){hint}"
            ) from None
    path = Path(url[len("file://") :] if url.startswith("file://") else url)
    path = path if path.is_absolute() else request.workspace_root / path
    try:
        return Page(_decode(path.read_bytes(), None), str(path))
    except OSError as exc:
        raise ExtractError(
            f"{request.source_key}: cannot read the page file {path} ({exc.strerror}): fix extract.url "
            "(an http(s) URL, or a path relative to the workspace)"
        ) from None


# -- finding the table -----------------------------------------------------------------------------------------------


def _text(node: Any) -> str:
    return WHITESPACE_RE.sub(" ", node.text(deep=True, separator=" ")).strip()


def _caption(table: Any) -> str:
    caption = next((c for c in table.iter() if c.tag == "caption"), None)
    return _text(caption) if caption is not None else ""


def _rows(table: Any) -> list[Any]:
    """The table's own rows (not those of nested tables): thead, then body rows, in document order; no tfoot."""
    rows: list[Any] = []
    for child in table.iter():
        if child.tag == "tr":
            rows.append(child)
        elif child.tag in ("thead", "tbody"):
            rows.extend(r for r in child.iter() if r.tag == "tr")
    return rows


def describe_tables(tables: list[Any]) -> str:
    """What tables a page has, for the error that says the wanted one is not there."""
    if not tables:
        return "the page has no <table> at all"
    parts = []
    for i, table in enumerate(tables[:20]):
        attrs = table.attributes
        label = f"#{i}"
        if attrs.get("id"):
            label += f" id={attrs['id']}"
        if attrs.get("class"):
            label += f" class={attrs['class']!r}"
        caption = _caption(table)
        if caption:
            label += f" caption={caption[:60]!r}"
        rows = _rows(table)
        first = [_text(c) for c in rows[0].iter() if c.tag in ("td", "th")][:6] if rows else []
        label += f" ({len(rows)} rows, first row: {', '.join(first) or '-'})"
        parts.append(label)
    more = f" and {len(tables) - 20} more" if len(tables) > 20 else ""
    return f"the page has {len(tables)} table(s): " + "; ".join(parts) + more


def locate_table(html: str, extract: HtmlTableExtract, where: str) -> tuple[Any, str, int]:
    """The wanted <table> node, a description of how it was found, and how many tables the page has."""
    from selectolax.lexbor import LexborHTMLParser  # lazy: only html_table sources parse HTML

    tree = LexborHTMLParser(html)
    tables = tree.css("table")
    if extract.selector is not None:
        try:
            matched = tree.css(extract.selector)
        except Exception as exc:
            raise ExtractError(f"{where}: selector {extract.selector!r} is not valid CSS ({exc})") from None
        # A selector may point at a wrapper (div.depots): take the first table inside it.
        found = [m if m.tag == "table" else m.css_first("table") for m in matched]
        found = [f for f in found if f is not None]
        if not found:
            raise ExtractError(
                f"{where}: selector {extract.selector!r} matches no table; {describe_tables(tables)}. "
                "Fix extract.selector, or use table: <index> or caption: <text>"
            )
        return found[0], f"selector {extract.selector!r}", len(tables)
    if extract.caption is not None:
        wanted = WHITESPACE_RE.sub(" ", extract.caption).strip().lower()
        for i, table in enumerate(tables):
            if wanted in _caption(table).lower():
                return table, f"#{i}, caption {_caption(table)!r}", len(tables)
        raise ExtractError(
            f"{where}: no table has a caption containing {extract.caption!r}; {describe_tables(tables)}. "
            "Fix extract.caption, or use table: <index> or selector: <css>"
        )
    index = extract.table or 0
    if index >= len(tables):
        raise ExtractError(
            f"{where}: table {index} asked for (counting from 0), but {describe_tables(tables)}. "
            "Fix extract.table, or use selector: <css> or caption: <text>"
        )
    return tables[index], f"#{index}", len(tables)


# -- from rows of cells to columns -----------------------------------------------------------------------------------


def _span(cell: Any, name: str, limit: int) -> int:
    try:
        value = int(str(cell.attributes.get(name) or "1").strip())
    except ValueError:
        return 1
    return limit if value == 0 and name == "rowspan" else max(1, min(value, limit))


def table_grid(table: Any, spans: str, where: str) -> list[list[str | None]]:
    """The table as rows of trimmed cell texts (empty = None), colspan/rowspan repeated into covered cells."""
    grid: list[list[str | None]] = []
    carried: dict[int, tuple[int, str | None]] = {}  # column -> (rows still covered, value) from a rowspan above
    for r, tr in enumerate(_rows(table)):
        row: list[str | None] = []
        cells = [c for c in tr.iter() if c.tag in ("td", "th")]
        column = 0
        for cell in cells:
            while column in carried:
                column = _take_carried(carried, column, row)
            value = _text(cell) or None
            colspan, rowspan = _span(cell, "colspan", MAX_COLSPAN), _span(cell, "rowspan", MAX_ROWSPAN)
            if spans == "refuse" and (colspan > 1 or rowspan > 1):
                raise ExtractError(
                    f"{where}: row {r} has a cell spanning {colspan} column(s) and {rowspan} row(s) ({value!r}); "
                    "spans: refuse forbids it. Set spans: repeat to copy the value into every covered cell"
                )
            for _ in range(colspan):
                row.append(value)
                if rowspan > 1:
                    carried[column] = (rowspan - 1, value)
                column += 1
        while column in carried:  # rowspans from above that cover the end of this row
            column = _take_carried(carried, column, row)
        grid.append(row)
    return grid


def _take_carried(carried: dict[int, tuple[int, str | None]], column: int, row: list[str | None]) -> int:
    left, value = carried[column]
    row.append(value)
    if left > 1:
        carried[column] = (left - 1, value)
    else:
        del carried[column]
    return column + 1


def column_names(header: list[str | None]) -> list[str]:
    """Header texts as column names: blanks become column_<n>, repeats get _2, _3..."""
    names: list[str] = []
    for i, text in enumerate(header):
        base = text or f"column_{i + 1}"
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def grid_table(grid: list[list[str | None]], extract: HtmlTableExtract, where: str) -> pa.Table:
    """The data rows as an all-text Arrow table, named from the header row or `column_names`."""
    if extract.header_row is not None:
        if extract.header_row >= len(grid):
            raise ExtractError(
                f"{where}: header_row {extract.header_row} asked for, but the table has {len(grid)} row(s)"
            )
        names = column_names(grid[extract.header_row])
        body = grid[extract.header_row + 1 :]
    else:
        names, body = [], grid
    if extract.column_names:
        names = list(extract.column_names)
    width = max([len(names), *(len(row) for row in body)]) if body else len(names)
    if width > len(names):
        longest = next(i for i, row in enumerate(body) if len(row) == width)
        raise ExtractError(
            f"{where}: a data row has {width} cells but there are {len(names)} column names "
            f"(data row {longest}): name them all in extract.column_names, or fix extract.header_row"
        )
    columns = [[row[i] if i < len(row) else None for row in body] for i in range(len(names))]
    return pa.table({name: pa.array(values, pa.string()) for name, values in zip(names, columns, strict=True)})


def stage(request: StageRequest) -> StagedExtract:
    """Fetch the page, find the table, stage its rows as one Parquet file of text columns."""
    extract = request.extract
    if not isinstance(extract, HtmlTableExtract):
        raise TypeError(f"not an html_table extract: {extract!r}")
    page = fetch_page(request, extract)
    where = f"{request.source_key}: {page.origin}"
    table_node, how, tables = locate_table(page.html, extract, where)
    table = grid_table(table_grid(table_node, extract.spans, where), extract, where)
    notes: dict[str, int | str] = {"tables_on_page": tables, "table": how}
    if table.num_rows == 0:
        return StagedExtract(paths=[], origin=page.origin, rows=0, notes=notes)
    target = request.staging_dir / "html-table.parquet"
    pq.write_table(table, target)
    return StagedExtract(paths=[str(target)], origin=page.origin, rows=table.num_rows, notes=notes)
