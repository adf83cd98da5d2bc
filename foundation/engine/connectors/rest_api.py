"""The `rest_api` extract: pages of JSON records from an HTTP API, staged as NDJSON files for the ingest runner.

HTTP, pagination, authentication and retries (5xx, 429 with Retry-After, timeouts, lost connections) are dlt's REST
client (`dlt.sources.helpers.rest_client`), configured from the YAML with dlt's own vocabulary. What is ours is the
data path: each page is parsed once with orjson and its records are written straight to NDJSON, which DuckDB then
reads, types and lands like any file source (dlt's own pipeline normalises row by row in Python: far slower).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import requests
from dlt.common import jsonpath
from dlt.common.configuration.specs.runtime_configuration import RuntimeConfiguration
from dlt.sources.helpers.requests.retry import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client import auth as dlt_auth
from dlt.sources.helpers.rest_client import paginators as dlt_paginators

from foundation.engine.connectors.staging import ExtractError, StagedExtract, StageRequest
from foundation.specs.secrets import ENV_REF_RE, MissingSecretError
from foundation.specs.secrets import resolve as resolve_env
from foundation.specs.source import (
    ApiKeyAuth,
    BearerAuth,
    HttpBasicAuth,
    ResolveParam,
    RestApiExtract,
    RestEndpoint,
)

_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _PageError(Exception):
    """Raised inside the client's page parsing; turned into an ExtractError that names the source."""


@dataclass
class _Counters:
    pages: int = 0
    failed_attempts: int = 0  # responses/exceptions that dlt's retry policy retried (or gave up on)
    parent_records: int = 0


@dataclass
class _Secrets:
    values: list[str] = field(default_factory=list)  # resolved secret values, scrubbed from every message
    variables: list[str] = field(default_factory=list)  # names of the credential variables, for 401/403

    def redact(self, text: str) -> str:
        for value in self.values:
            if value:
                text = text.replace(value, "***")
        return text


def public_url(url: str) -> str:
    """A URL fit for messages and lineage: no user info, no query string (an API key may sit there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def select_records(body: Any, selector: str | None) -> list[Any] | None:
    """The records at `selector` (dotted path, or any JSONPath), like dlt's data_selector; None if the path is absent.

    A plain dotted path is walked directly: dlt's jsonpath engine costs more than parsing the page.
    """
    path = (selector or "$").strip()
    if path.startswith("$."):
        path = path[2:]
    if path in ("$", ""):
        found: Any = body
    elif re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", path):
        found = body
        for key in path.split("."):
            if not isinstance(found, dict) or key not in found:
                return None
            found = found[key]
    else:
        values = jsonpath.find_values(selector, body)
        if not values:
            return None
        found = values[0] if len(values) == 1 else values
    if found is None:
        return []
    return found if isinstance(found, list) else [found]


class _StagingClient(RESTClient):
    """dlt's REST client, parsing each page once (orjson) for the records and for the paginator alike."""

    def extract_response(self, response: requests.Response, data_selector: Any) -> list[Any]:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            kind = response.headers.get("Content-Type", "no content type")
            raise _PageError(f"the response is not valid JSON ({exc}; content type: {kind})") from None
        response.json = lambda **_: body  # type: ignore[method-assign]  # paginators read the body again
        records = select_records(body, data_selector)
        if records is None:
            keys = ", ".join(list(body)[:10]) if isinstance(body, dict) else type(body).__name__
            raise _PageError(
                f"data_selector {data_selector!r} is not in the response (its top-level keys: {keys}); "
                "fix extract.data_selector"
            )
        return records


# paginator `type` -> dlt's class; the spec's other fields are named as dlt's keyword arguments (its vocabulary)
DLT_PAGINATORS: dict[str, type[dlt_paginators.BasePaginator]] = {
    "single_page": dlt_paginators.SinglePagePaginator,
    "page_number": dlt_paginators.PageNumberPaginator,
    "offset": dlt_paginators.OffsetPaginator,
    "cursor": dlt_paginators.JSONResponseCursorPaginator,
    "json_link": dlt_paginators.JSONLinkPaginator,
    "header_link": dlt_paginators.HeaderLinkPaginator,
}


def _paginator(endpoint: RestEndpoint) -> dlt_paginators.BasePaginator:
    spec = endpoint.paginator
    if spec is None:
        return dlt_paginators.SinglePagePaginator()
    return DLT_PAGINATORS[spec.type](**spec.model_dump(exclude={"type"}))


def _auth(extract: RestApiExtract, secrets: _Secrets) -> dlt_auth.AuthConfigBase | None:
    spec = extract.auth

    def secret(value: str, where: str) -> str:
        secrets.variables.extend(ENV_REF_RE.findall(value))
        resolved = resolve_env(value, where)
        secrets.values.append(resolved)
        return resolved

    if spec is None:
        return None
    if isinstance(spec, BearerAuth):
        return dlt_auth.BearerTokenAuth(token=secret(spec.token, "extract.auth.token"))
    if isinstance(spec, ApiKeyAuth):
        key = secret(spec.api_key, "extract.auth.api_key")
        return dlt_auth.APIKeyAuth(name=spec.name, api_key=key, location=spec.location)
    if isinstance(spec, HttpBasicAuth):
        username = resolve_env(spec.username, "extract.auth.username")
        return dlt_auth.HttpBasicAuth(username=username, password=secret(spec.password, "extract.auth.password"))
    raise TypeError(f"unknown auth {spec!r}")


def _resolved_mapping(values: dict[str, Any], where: str, secrets: _Secrets) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str) and ENV_REF_RE.search(value):
            secrets.variables.extend(ENV_REF_RE.findall(value))
            value = resolve_env(value, f"{where}.{key}")
            secrets.values.append(value)  # a header or param from the environment may be a credential
        out[key] = value
    return out


class _NdjsonStager:
    """Appends records to NDJSON files in the staging folder, a new file every `file_rows` records."""

    def __init__(self, folder: Path, file_rows: int) -> None:
        self.folder = folder
        self.file_rows = max(file_rows, 1)
        self.paths: list[str] = []
        self.rows = 0
        self._handle: IO[bytes] | None = None
        self._in_file = 0

    def write(self, records: list[Any]) -> None:
        if not records:
            return
        if self._handle is None or self._in_file >= self.file_rows:
            self._rotate()
        assert self._handle is not None
        dumps = orjson.dumps
        lines = [dumps(r if isinstance(r, dict) else {"value": r}) for r in records]
        self._handle.write(b"\n".join(lines))
        self._handle.write(b"\n")
        self._in_file += len(records)
        self.rows += len(records)

    def _rotate(self) -> None:
        self.close()
        path = self.folder / f"part-{len(self.paths):05d}.ndjson"
        self._handle = path.open("wb")
        self.paths.append(str(path))
        self._in_file = 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class _Fetcher:
    """Pages of one source, with its client, bounds and the messages of its errors."""

    def __init__(self, request: StageRequest, extract: RestApiExtract) -> None:
        self.request = request
        self.extract = extract
        self.counters = _Counters()
        self.secrets = _Secrets()
        where = "extract"
        self.base_url = resolve_env(extract.base_url, f"{where}.base_url")
        headers = _resolved_mapping(extract.headers, f"{where}.headers", self.secrets)
        auth = _auth(extract, self.secrets)
        retries = extract.retries
        session = Client(
            request_timeout=extract.timeout,
            raise_for_status=False,
            request_max_attempts=retries.max_attempts,
            request_backoff_factor=retries.backoff_factor,
            request_max_retry_delay=retries.max_delay,
            respect_retry_after_header=True,
        ).session
        session.headers["User-Agent"] = "data-foundation"
        self.client = _StagingClient(
            base_url=self.base_url, headers=headers, auth=auth, session=session, config=RuntimeConfiguration()
        )

    def on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Response hook, run on every attempt: count what the retry policy will retry, raise on errors."""
        if response.status_code == 429 or response.status_code >= 500:
            self.counters.failed_attempts += 1
        if response.status_code >= 400:
            raise requests.HTTPError(f"{response.status_code} {response.reason}", response=response)

    def fail(self, message: str) -> ExtractError:
        return ExtractError(self.secrets.redact(f"{self.request.source_key}: {message}"))

    def pages(self, endpoint: RestEndpoint, path: str, params: dict[str, Any]) -> Iterator[list[Any]]:
        """Every page of records of one endpoint call, bounded by max_pages, failing on a page that repeats."""
        url = public_url(path if urlsplit(path).scheme else self.base_url.rstrip("/") + "/" + path.lstrip("/"))
        previous: int | None = None
        number = 0
        pages = self.client.paginate(
            path,
            params=params,
            paginator=_paginator(endpoint),
            data_selector=endpoint.data_selector or "$",
            hooks={"response": [self.on_response]},
        )
        while True:
            number += 1
            try:
                page = next(pages)
            except StopIteration:
                return
            except _PageError as exc:
                raise self.fail(f"page {number} of {url}: {exc}") from None
            except requests.HTTPError as exc:
                raise self._http_error(exc, url, number) from None
            except (
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidURL,
            ):
                raise self.fail(f"{url} is not a valid http(s) URL; check extract.base_url and extract.path") from None
            except requests.Timeout:
                raise self.fail(
                    f"page {number} of {url} timed out after {self.extract.timeout:g}s, "
                    f"{self.extract.retries.max_attempts} attempt(s); raise extract.timeout or retries.max_attempts, "
                    "or check the server"
                ) from None
            except requests.ConnectionError as exc:
                reason = type(exc).__name__
                hint = f" {self.extract.help}" if self.extract.help else " Check extract.base_url and that it is up."
                raise self.fail(f"cannot reach {url} ({reason}).{hint}") from None
            except ValueError as exc:  # dlt's paginators: total/has_more missing or not a number
                raise self.fail(f"page {number} of {url}: {exc}; check extract.paginator") from None
            self.counters.pages += 1
            fingerprint = hash(page.response.content)
            if page and fingerprint == previous:
                raise self.fail(
                    f"page {number} of {url} is the same as page {number - 1}: the paginator does not advance "
                    "(check the paginator's parameter names against the API)"
                )
            previous = fingerprint
            if number > self.extract.max_pages:
                raise self.fail(
                    f"{url} has more than max_pages={self.extract.max_pages} pages; nothing was landed. "
                    "Raise extract.max_pages if the API really is that long, else check the paginator"
                )
            yield list(page)

    def _http_error(self, exc: requests.HTTPError, url: str, page: int) -> ExtractError:
        response = exc.response
        status = response.status_code if response is not None else 0
        if status in (401, 403):
            names = ", ".join(sorted(set(self.secrets.variables))) or "none is configured (add extract.auth)"
            verb = "refused the credentials (401 Unauthorized)" if status == 401 else "denied access (403 Forbidden)"
            return self.fail(
                f"{url} {verb}. Credential variable(s): {names}. Check their value (expired or wrong token, "
                "missing scope) and extract.auth"
            )
        reason = response.reason if response is not None else ""
        if status == 429 or status >= 500:
            return self.fail(
                f"page {page} of {url} still answered {status} {reason} after "
                f"{self.extract.retries.max_attempts} attempt(s); try again later or raise extract.retries"
            )
        body = response.text[:200] if response is not None else ""
        return self.fail(f"page {page} of {url} answered {status} {reason}: {body!r}; check path and params")


def _endpoint_params(endpoint: RestEndpoint, fetcher: _Fetcher) -> dict[str, Any]:
    plain = {k: v for k, v in endpoint.params.items() if not isinstance(v, ResolveParam)}
    return _resolved_mapping(plain, "extract.params", fetcher.secrets)


def stage(request: StageRequest) -> StagedExtract:
    """Fetch every page (after the last landed cursor) and stage the records as NDJSON files."""
    extract = request.extract
    assert isinstance(extract, RestApiExtract)
    try:
        fetcher = _Fetcher(request, extract)
        params = _endpoint_params(extract, fetcher)
    except MissingSecretError as exc:
        hint = f" {extract.help}" if extract.help else ""
        raise ExtractError(f"{request.source_key}: {exc}.{hint}") from None
    if extract.incremental is not None:
        since = request.last_cursor if request.last_cursor is not None else extract.incremental.initial_value
        if since is not None:
            params[extract.incremental.param] = since
    stager = _NdjsonStager(request.staging_dir, request.batch_rows)
    try:
        if extract.parent is None:
            for records in fetcher.pages(extract, extract.path, params):
                stager.write(records)
        else:
            _stage_children(fetcher, extract, params, stager)
    finally:
        stager.close()
    notes: dict[str, int | str] = {
        "pages": fetcher.counters.pages,
        "retried_attempts": fetcher.counters.failed_attempts,
    }
    if extract.parent is not None:
        notes["parent_records"] = fetcher.counters.parent_records
    origin = public_url(fetcher.base_url.rstrip("/") + "/" + extract.path.lstrip("/"))
    return StagedExtract(paths=stager.paths, origin=origin, rows=stager.rows, notes=notes, file_format="ndjson")


def fill_path(template: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`trucks/{id}/repairs` filled from `values`; the values no placeholder uses go in the query string."""
    used: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        used.add(name)
        return str(values[name])

    path = _PLACEHOLDER_RE.sub(fill, template)
    return path, {k: v for k, v in values.items() if k not in used}


def _stage_children(fetcher: _Fetcher, extract: RestApiExtract, params: dict[str, Any], stager: _NdjsonStager) -> None:
    parent = extract.parent
    assert parent is not None
    resolved = {k: v for k, v in extract.params.items() if isinstance(v, ResolveParam)}
    parent_params = _endpoint_params(parent, fetcher)
    for parents in fetcher.pages(parent, parent.path, parent_params):
        for record in parents:
            fetcher.counters.parent_records += 1
            values: dict[str, Any] = {}
            for name, param in resolved.items():
                if not isinstance(record, dict) or record.get(param.field) is None:
                    raise fetcher.fail(
                        f"parent record {fetcher.counters.parent_records} of {parent.path} has no field "
                        f"{param.field!r} to resolve {name!r}; fix params.{name}.field"
                    )
                values[name] = record[param.field]
            path, query = fill_path(extract.path, values)
            child_params = {**params, **query}
            extra = {f"parent_{f}": record.get(f) for f in extract.include_from_parent}
            for records in fetcher.pages(extract, path, child_params):
                if extra:
                    records = [{**r, **extra} if isinstance(r, dict) else {"value": r, **extra} for r in records]
                stager.write(records)
