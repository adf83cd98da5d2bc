"""The lakehouse on object storage (S3, ADLS, GCS): one set of deltalake storage options, two readers.

deltalake writes and reads the Delta log through its own object store client, configured by `storage_options`
(the same keys as delta-rs: AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT_URL, AZURE_STORAGE_ACCOUNT_NAME...) or by
the standard environment variables. DuckDB reads the snapshot's Parquet files; its own S3 reader (the httpfs
extension) is not bundled in the duckdb wheel and cannot be downloaded at run time, so remote files are scanned
through a pyarrow dataset on the matching `pyarrow.fs` filesystem, which DuckDB reads lazily through Arrow
(projection and filters pushed down, no copy; bench/lakehouse_s3.py measures it). This module maps the delta-rs
option names onto that filesystem, so a deployment configures storage once.

Every module that opens or writes a Delta table itself takes the workspace's options from here (`storage_options_of`,
`open_delta`, `write_delta`, `is_delta`), so credentials given only in the profile reach every reader and writer.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import DeltaTable, write_deltalake

if TYPE_CHECKING:
    from foundation.core.workspace import Workspace

S3_SCHEMES = ("s3", "s3a")
GCS_SCHEMES = ("gs", "gcs")
AZURE_SCHEMES = ("az", "abfs", "abfss", "azure")
REMOTE_SCHEMES = (*S3_SCHEMES, *GCS_SCHEMES, *AZURE_SCHEMES)


def is_remote(uri: str) -> bool:
    """True for an object-store URI (s3://, gs://, abfss://...), False for a folder or file://."""
    return urlparse(uri).scheme.lower() in REMOTE_SCHEMES


def storage_options_of(workspace: Workspace) -> dict[str, str] | None:
    """The workspace's deltalake storage options (`lakehouse.storage_options` of the active profile); None when empty,
    so deltalake falls back to the standard environment variables."""
    return dict(workspace.settings.lakehouse.storage_options) or None


def open_delta(workspace: Workspace, uri: str, version: int | None = None) -> DeltaTable:
    """The Delta table at `uri` (at `version`, else the latest), opened with the workspace's storage options."""
    return DeltaTable(uri, version=version, storage_options=storage_options_of(workspace))


def is_delta(workspace: Workspace, uri: str) -> bool:
    """True when a Delta table exists at `uri`, asked with the workspace's storage options."""
    return DeltaTable.is_deltatable(uri, storage_options=storage_options_of(workspace))


def write_delta(workspace: Workspace, uri: str, data: Any, **kwargs: Any) -> None:
    """`write_deltalake(uri, data, **kwargs)` with the workspace's storage options (one atomic Delta commit)."""
    write_deltalake(uri, data, storage_options=storage_options_of(workspace), **kwargs)


def _options(storage_options: Mapping[str, str] | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Environment first, storage options over it, keys upper-cased (delta-rs accepts both cases)."""
    merged = {k.upper(): v for k, v in environ.items() if k.upper().startswith(("AWS_", "AZURE_", "GOOGLE_"))}
    merged.update({k.upper(): str(v) for k, v in (storage_options or {}).items()})
    return merged


def _first(options: Mapping[str, str], *keys: str) -> str | None:
    return next((options[k] for k in keys if options.get(k)), None)


def s3_filesystem_kwargs(options: Mapping[str, str]) -> dict[str, object]:
    """Pure: pyarrow S3FileSystem arguments from delta-rs S3 options (AWS_ENDPOINT_URL=http://host:port...)."""
    kwargs: dict[str, object] = {}
    if key := _first(options, "AWS_ACCESS_KEY_ID", "ACCESS_KEY_ID"):
        kwargs["access_key"] = key
        kwargs["secret_key"] = _first(options, "AWS_SECRET_ACCESS_KEY", "SECRET_ACCESS_KEY")
        if token := _first(options, "AWS_SESSION_TOKEN", "AWS_TOKEN", "SESSION_TOKEN"):
            kwargs["session_token"] = token
    if region := _first(options, "AWS_REGION", "AWS_DEFAULT_REGION", "REGION"):
        kwargs["region"] = region
    if endpoint := _first(options, "AWS_ENDPOINT_URL", "AWS_ENDPOINT", "ENDPOINT_URL", "ENDPOINT"):
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
        kwargs["scheme"] = parsed.scheme
    if _first(options, "AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "VIRTUAL_HOSTED_STYLE_REQUEST") == "true":
        kwargs["force_virtual_addressing"] = True
    return kwargs


def azure_filesystem_kwargs(uri: str, options: Mapping[str, str]) -> dict[str, object]:
    """Pure: pyarrow AzureFileSystem arguments from delta-rs Azure options (abfss://container@account.dfs...)."""
    host = urlparse(uri).netloc
    account = _first(options, "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT", "ACCOUNT_NAME")
    if not account and "@" in host:
        account = host.split("@", 1)[1].split(".", 1)[0]
    if not account:
        raise ValueError(f"{uri}: no storage account: set AZURE_STORAGE_ACCOUNT_NAME in lakehouse.storage_options")
    kwargs: dict[str, object] = {"account_name": account}
    if key := _first(options, "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY", "ACCOUNT_KEY"):
        kwargs["account_key"] = key
    if sas := _first(options, "AZURE_STORAGE_SAS_TOKEN", "SAS_TOKEN"):
        kwargs["sas_token"] = sas
    for ours, theirs in (("client_id", "AZURE_CLIENT_ID"), ("client_secret", "AZURE_CLIENT_SECRET")):
        if value := options.get(theirs):
            kwargs[ours] = value
    if tenant := _first(options, "AZURE_TENANT_ID", "AZURE_AUTHORITY_ID"):
        kwargs["tenant_id"] = tenant
    return kwargs


def filesystem_path(uri: str) -> str:
    """Pure: the path of `uri` inside its filesystem (`bucket/key` for S3 and GCS, `container/key` for Azure)."""
    parsed = urlparse(uri)
    bucket = parsed.netloc.split("@", 1)[0]
    return f"{bucket}{parsed.path}".rstrip("/")


def arrow_filesystem(
    uri: str, storage_options: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
) -> pafs.FileSystem:
    """The pyarrow filesystem that reads `uri` with the same credentials deltalake uses."""
    scheme = urlparse(uri).scheme.lower()
    options = _options(storage_options, os.environ if environ is None else environ)
    if scheme in S3_SCHEMES:
        return pafs.S3FileSystem(**s3_filesystem_kwargs(options))  # type: ignore[arg-type]
    if scheme in AZURE_SCHEMES:
        return pafs.AzureFileSystem(**azure_filesystem_kwargs(uri, options))  # type: ignore[arg-type]
    if scheme in GCS_SCHEMES:
        return pafs.GcsFileSystem()  # Google's default credentials: GOOGLE_APPLICATION_CREDENTIALS, workload identity
    return pafs.LocalFileSystem()


def register_remote_files(
    con: duckdb.DuckDBPyConnection,
    files: list[str],
    schema: pa.Schema,
    storage_options: Mapping[str, str] | None = None,
) -> str:
    """Register the Parquet files of one Delta snapshot on object storage as a lazy Arrow dataset; returns its name.

    The name is derived from the files, so one snapshot registered twice is one object, and two snapshots never
    replace each other inside a connection."""
    filesystem = arrow_filesystem(files[0], storage_options)
    import pyarrow.dataset as ds  # lazy: it imports pandas (1.5 s), and only remote reads need it

    dataset = ds.dataset([filesystem_path(f) for f in files], schema=schema, format="parquet", filesystem=filesystem)
    name = "_delta_" + hashlib.sha1("\n".join(files).encode()).hexdigest()[:16]
    con.register(name, dataset)
    return name


def list_delta_tables(base_uri: str, storage_options: Mapping[str, str] | None = None) -> dict[tuple[str, str], str]:
    """(group, table) -> uri for every Delta table two levels under `base_uri` on object storage."""
    filesystem = arrow_filesystem(base_uri, storage_options)
    base = filesystem_path(base_uri)
    found: dict[tuple[str, str], str] = {}
    groups = filesystem.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    for group in sorted((g for g in groups if g.type == pafs.FileType.Directory), key=lambda g: g.path):
        tables = filesystem.get_file_info(pafs.FileSelector(group.path, allow_not_found=True))
        for table in sorted((t for t in tables if t.type == pafs.FileType.Directory), key=lambda t: t.path):
            log = filesystem.get_file_info(pafs.FileSelector(f"{table.path}/_delta_log", allow_not_found=True))
            if log:
                found[(group.base_name, table.base_name)] = (
                    f"{base_uri.rstrip('/')}/{group.base_name}/{table.base_name}"
                )
    return found


def read_text(uri: str, storage_options: Mapping[str, str] | None = None) -> str | None:
    """A small text file (the KPI catalogue) from a folder or object storage; None when it does not exist."""
    filesystem = arrow_filesystem(uri, storage_options)
    path = filesystem_path(uri) if is_remote(uri) else os.path.abspath(uri)
    try:
        with filesystem.open_input_stream(path) as stream:
            return bytes(stream.read()).decode("utf-8")
    except FileNotFoundError:
        return None


def write_text(uri: str, text: str, storage_options: Mapping[str, str] | None = None) -> None:
    """Replace a small text file whole: on object storage one PUT; in a folder a temporary file renamed over it, so a
    reader never sees half of it."""
    if not is_remote(uri):
        os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
        temporary = f"{uri}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, uri)
        return
    filesystem = arrow_filesystem(uri, storage_options)
    with filesystem.open_output_stream(filesystem_path(uri)) as stream:
        stream.write(text.encode("utf-8"))
