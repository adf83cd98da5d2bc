"""`foundation doctor`: connect to every part a settings profile points at and say what is reachable.

Each probe is small and real (a Delta write and read, a DuckDB open, a Dagster run-storage query, MLflow searches,
`dbt debug`, the API's readiness route) with short timeouts, so a wrong endpoint fails in seconds, not after the
clients' minutes of retries. Messages pass through `Redactor`: no value expanded from `${VAR}`, and no password in
a URI, is ever printed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from foundation.core.settings_profiles import LOCAL, PROFILES_KEY, env_references, read_document, selected_profile
from foundation.core.workspace import Workspace
from foundation.specs.secrets import SECRET_KEY_RE

Status = Literal["ok", "warn", "fail"]
PARTS = ("settings", "lakehouse", "duckdb", "dagster", "mlflow", "dbt", "api")
PROBE_TIMEOUT_S = 5
# object_store (deltalake's client) options: fail fast instead of retrying for minutes
FAST_FAIL_OPTIONS = {"timeout": "10s", "connect_timeout": "5s", "max_retries": "1", "retry_timeout": "10s"}
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
URI_PASSWORD_RE = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


@dataclass(frozen=True)
class Probe:
    part: str
    status: Status
    detail: str
    fix: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Redactor:
    """Masks secret values in text: every value given, and the password of any URI."""

    secrets: set[str] = field(default_factory=set)

    def __call__(self, text: str) -> str:
        text = ANSI_RE.sub("", text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 4:  # masking "1" or "" would garble every message
                text = text.replace(secret, "***")
        return URI_PASSWORD_RE.sub(r"\1***@", text)


def looks_secret(name: str) -> bool:
    return bool(SECRET_KEY_RE.search(name)) or name.upper().endswith(("_KEY", "_KEYS", "_TOKEN", "_SECRET", "PASSWORD"))


def secret_values(root: Path, environ: Mapping[str, str]) -> set[str]:
    """Values that must never be printed: variables foundation.yaml references under a secret-looking key or name,
    and every secret-looking variable of the environment (DAGSTER_PG_PASSWORD, FOUNDATION_API_KEYS...)."""
    doc, _ = read_document(root)
    data = doc.data if doc is not None and isinstance(doc.data, dict) else {}
    names = {name for loc, name in env_references(data) if looks_secret(name) or (loc and looks_secret(str(loc[-1])))}
    names |= {k for k in environ if looks_secret(k)}
    return {environ[n] for n in names if environ.get(n)}


def _first_line(exc: BaseException) -> str:
    text = ANSI_RE.sub("", str(exc)).strip()
    lines = [line.strip(" ↳") for line in text.splitlines() if line.strip(" ↳")]
    return f"{type(exc).__name__}: {'; '.join(lines[:4])}"[:400]


@contextlib.contextmanager
def _env(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- probes ---------------------------------------------------------------------------------------------------


def probe_lakehouse(workspace: Workspace) -> Probe:
    # lazy: duckdb, pyarrow, deltalake: `foundation doctor` is imported with the CLI, each probe pays for its own part
    import duckdb
    import pyarrow as pa
    from deltalake import write_deltalake

    from foundation.engine.lakehouse.catalog import delta_relation_sql
    from foundation.engine.lakehouse.object_store import (
        arrow_filesystem,
        filesystem_path,
        is_remote,
        storage_options_of,
    )

    root = workspace.lakehouse_root
    options = {**FAST_FAIL_OPTIONS, **(storage_options_of(workspace) or {})} if is_remote(root) else None
    token = uuid.uuid4().hex
    uri = f"{root.rstrip('/')}/_doctor/probe-{token[:12]}"
    try:
        write_deltalake(uri, pa.table({"probe": [token]}), storage_options=options)
        con = duckdb.connect()
        try:
            relation = delta_relation_sql(con, uri, storage_options=options)
            read = con.execute(f"select probe from {relation}").fetchall()
        finally:
            con.close()
    except Exception as exc:
        fix = (
            "check lakehouse.root, the bucket, lakehouse.storage_options and the credentials in the environment"
            if is_remote(root)
            else "check lakehouse.root is a folder this user can write"
        )
        return Probe("lakehouse", "fail", f"{root}: {_first_line(exc)}", fix)
    finally:
        with contextlib.suppress(Exception):
            if is_remote(uri):
                arrow_filesystem(uri, options).delete_dir(filesystem_path(uri))
            else:
                shutil.rmtree(uri)
                Path(uri).parent.rmdir()  # only when empty: another doctor may be probing at the same time
    if read != [(token,)]:
        return Probe("lakehouse", "fail", f"{root}: wrote a probe row, read back {len(read)} other row(s)", "")
    return Probe("lakehouse", "ok", f"{root}: Delta write, DuckDB read, delete")


def probe_duckdb(workspace: Workspace) -> Probe:
    import duckdb  # lazy: imported with the CLI (doctor_command); only this probe needs duckdb

    path = Path(workspace.resolve(workspace.settings.duckdb.path))
    if not path.exists():
        if not os.access(path.parent if path.parent.exists() else workspace.root, os.W_OK):
            return Probe("duckdb", "fail", f"{path}: its folder is not writable", "fix duckdb.path or the permissions")
        return Probe("duckdb", "ok", f"{path}: not created yet (the first dbt build creates it)")
    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            tables = con.execute("select count(*) from information_schema.tables").fetchall()[0][0]
        finally:
            con.close()
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            return Probe("duckdb", "warn", f"{path}: in use by a running pipeline (one writer per file)", "")
        return Probe("duckdb", "fail", f"{path}: {_first_line(exc)}", "check duckdb.path")
    return Probe("duckdb", "ok", f"{path}: {tables} table(s)")


def probe_dagster(workspace: Workspace) -> Probe:
    from foundation.dagster_defs.instance import dagster_instance  # lazy: dagster (seconds), this probe only

    try:
        instance = dagster_instance(workspace)
        try:
            runs = instance.get_runs_count()
            storage = type(instance.run_storage).__name__
            coordinator = type(instance.run_coordinator).__name__
        finally:
            instance.dispose()
    except Exception as exc:
        return Probe(
            "dagster",
            "fail",
            _first_line(exc),
            "check dagster.storage / dagster.home and the DAGSTER_PG_* variables (docs/operations.md)",
        )
    return Probe("dagster", "ok", f"{storage}, {coordinator}: {runs} run(s)")


def probe_mlflow(workspace: Workspace) -> list[Probe]:
    from mlops.registry import tracking_uri  # lazy: mlops, this probe only (doctor is imported with the CLI)

    uri = tracking_uri(workspace)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        detail = f"{uri}: not created yet (the first `foundation train` creates it)"
        return [Probe("mlflow tracking", "ok", detail), Probe("mlflow registry", "ok", detail)]
    fix = "check mlflow.tracking_uri and that the tracking server runs (docs/operations.md#mlflow-tracking-server)"
    # MLflow's HTTP client retries for minutes by default
    with _env({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(PROBE_TIMEOUT_S)}):
        import mlflow  # lazy: seconds, and its HTTP settings must be in the environment first

        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        probes = []
        try:
            experiments = client.search_experiments(max_results=100)
            probes.append(Probe("mlflow tracking", "ok", f"{uri}: {len(experiments)} experiment(s)"))
        except Exception as exc:
            probes.append(Probe("mlflow tracking", "fail", f"{uri}: {_first_line(exc)}", fix))
        try:
            models = client.search_registered_models(max_results=100)
            probes.append(Probe("mlflow registry", "ok", f"{uri}: {len(models)} registered model(s)"))
        except Exception as exc:
            probes.append(Probe("mlflow registry", "fail", f"{uri}: {_first_line(exc)}", fix))
    return probes


def probe_dbt(workspace: Workspace) -> Probe:
    # lazy: the dbt engine (duckdb, deltalake), this probe only: doctor is imported with the CLI
    from foundation.engine.dbt.invocation import dbt_env, dbt_executable
    from foundation.engine.dbt.project import prepare_project

    target = workspace.settings.dbt.target
    try:
        paths = prepare_project(workspace)  # writes profiles.yml from the settings (and parses when stale)
    except Exception as exc:
        return Probe("dbt", "fail", _first_line(exc), "fix the dbt project (`foundation check` lists errors)")
    command = [dbt_executable(), "debug", "--target", target, "--project-dir", str(paths.project_dir)]
    try:
        result = subprocess.run(
            command, env=dbt_env(paths), capture_output=True, text=True, cwd=paths.project_dir, timeout=120
        )
    except subprocess.TimeoutExpired:
        return Probe("dbt", "fail", f"target {target}: `dbt debug` did not answer in 120 s", "check the dbt target")
    if result.returncode != 0:
        errors = [line.strip() for line in result.stdout.splitlines() if "ERROR" in line or "error" in line.lower()]
        detail = "; ".join(errors[-3:]) or result.stdout.strip().splitlines()[-1:]
        return Probe("dbt", "fail", f"target {target}: {detail}", "check dbt.target and its connection settings")
    return Probe("dbt", "ok", f"target {target}: profile and connection ok (dbt debug)")


def probe_api(workspace: Workspace, url: str | None) -> Probe:
    settings = workspace.settings.api
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = (url or f"http://{host}:{settings.port}").rstrip("/")
    ready = f"{base}/health/ready"
    try:
        with urllib.request.urlopen(ready, timeout=PROBE_TIMEOUT_S) as response:
            return Probe("api", "ok", f"{ready}: {response.status}")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")[:200]
        return Probe("api", "fail", f"{ready}: {exc.code} {body}", "see the API's log; `foundation models list`")
    except OSError as exc:
        # Locally the API runs only under `foundation serve`: not running is not a fault.
        status: Status = "warn" if workspace.profile == LOCAL else "fail"
        fix = "start it (`foundation serve`), or pass --api-url where it is deployed"
        return Probe("api", status, f"{ready}: not reachable ({_first_line(exc)})", fix)


# -- reachability: a TCP connect to every endpoint the profile names, before a command relies on it -----------------

ENDPOINT_KEYS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT", "ENDPOINT_URL", "ENDPOINT")  # delta-rs' names (either case)
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}
REACH_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Endpoint:
    """A server the profile points at, and the setting that names it (as a person finds it in foundation.yaml)."""

    setting: str
    host: str
    port: int
    fix: str


def host_port(url: str) -> tuple[str, int] | None:
    """Pure: (host, port) of a network URL (`http://h:9000`, `postgresql+psycopg2://u:p@h/db`); None for a file,
    a folder or `sqlite:///`."""
    parsed = urlparse(url if "://" in url else f"https://{url}")
    scheme = parsed.scheme.split("+", 1)[0].lower()
    if not parsed.hostname or scheme not in DEFAULT_PORTS:
        return None
    try:
        return parsed.hostname, parsed.port or DEFAULT_PORTS[scheme]
    except ValueError:  # a port that is not a number: settings validation reports it
        return None


def setting_name(data: Any, profile: str, *loc: str) -> str:
    """Pure: `profiles.<profile>.a.b` when the profile's overlay in foundation.yaml sets `a.b`, else `a.b`."""
    node = data.get(PROFILES_KEY, {}).get(profile) if isinstance(data, Mapping) else None
    for part in loc:
        node = node.get(part) if isinstance(node, Mapping) else None
    return ".".join((PROFILES_KEY, profile, *loc) if node is not None else loc)


def declared_endpoints(workspace: Workspace, environ: Mapping[str, str]) -> list[Endpoint]:
    """The object store's endpoint, Dagster's PostgreSQL and MLflow's tracking server, when the profile names them."""
    doc, _ = read_document(workspace.root)
    data = doc.data if doc is not None else {}
    profile, settings = workspace.profile, workspace.settings
    check = f"`foundation doctor --profile {profile}` checks every part"
    found: list[Endpoint] = []
    options = settings.lakehouse.storage_options
    key = next((k for k in options if k.upper() in ENDPOINT_KEYS and options[k]), None)
    remote = "://" in workspace.lakehouse_root and not workspace.lakehouse_root.startswith("file:")
    if remote and (key or environ.get("AWS_ENDPOINT_URL")):
        where = setting_name(data, profile, "lakehouse", "storage_options", key) if key else "AWS_ENDPOINT_URL"
        address = host_port(options[key] if key else environ["AWS_ENDPOINT_URL"])
        fix = f"start the object store there, or set {where} to its address; {check}"
        found += [Endpoint(where, *address, fix)] if address else []
    pg_port = environ.get("DAGSTER_PG_PORT") or "5432"
    if settings.dagster.storage == "postgres" and not settings.dagster.home and environ.get("DAGSTER_PG_HOST"):
        where = "DAGSTER_PG_HOST, DAGSTER_PG_PORT (dagster.storage: postgres)"
        fix = f"start PostgreSQL there, or set DAGSTER_PG_HOST and DAGSTER_PG_PORT to its address; {check}"
        found += [Endpoint(where, environ["DAGSTER_PG_HOST"], int(pg_port), fix)] if pg_port.isdigit() else []
    if address := host_port(settings.mlflow.tracking_uri):
        where = setting_name(data, profile, "mlflow", "tracking_uri")
        fix = f"start the tracking server (or its database) there, or set {where} to its address; {check}"
        found.append(Endpoint(where, *address, fix))
    return found


def unreachable(endpoints: list[Endpoint], timeout: float = REACH_TIMEOUT_S) -> list[Probe]:
    """A failed probe for every endpoint no TCP connection reaches within `timeout` (nothing is sent)."""
    failed = []
    for endpoint in endpoints:
        began = time.perf_counter()
        try:
            socket.create_connection((endpoint.host, endpoint.port), timeout=timeout).close()
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
            detail = f"{endpoint.setting}: {endpoint.host}:{endpoint.port} is not reachable ({reason})"
            failed.append(Probe("reachability", "fail", detail, endpoint.fix, time.perf_counter() - began))
    return failed


def unreachable_settings(workspace: Workspace) -> list[Probe]:
    """The servers the profile names that cannot be reached now, each with its setting and fix; [] locally."""
    return unreachable(declared_endpoints(workspace, os.environ))


# -- the whole check --------------------------------------------------------------------------------------------


def run_doctor(
    root: Path,
    profile: str | None = None,
    only: list[str] | None = None,
    api_url: str | None = None,
    on_probe: Callable[[str], None] | None = None,
) -> list[Probe]:
    """Every probe of the profile, redacted. The settings probe fails alone (nothing else can be reached)."""
    name = selected_profile(profile)
    redact = Redactor(secret_values(root, os.environ))
    started = time.perf_counter()
    try:
        workspace = Workspace.open(root, name)
    except Exception as exc:
        fix = f"`foundation check --profile {name}` lists every problem"
        return [Probe("settings", "fail", redact(_first_line(exc)), fix)]
    redact.secrets |= {v for k, v in workspace.settings.lakehouse.storage_options.items() if looks_secret(k) and v}
    probes = [Probe("settings", "ok", f"profile {name}", seconds=time.perf_counter() - started)]
    chosen = set(only or PARTS)
    runners: list[tuple[str, Callable[[], Probe | list[Probe]]]] = [
        ("lakehouse", lambda: probe_lakehouse(workspace)),
        ("duckdb", lambda: probe_duckdb(workspace)),
        ("dagster", lambda: probe_dagster(workspace)),
        ("mlflow", lambda: probe_mlflow(workspace)),
        ("dbt", lambda: probe_dbt(workspace)),
        ("api", lambda: probe_api(workspace, api_url)),
    ]
    for part, runner in runners:
        if part not in chosen:
            continue
        if on_probe is not None:
            on_probe(part)
        began = time.perf_counter()
        try:
            result = runner()
        except Exception as exc:  # a probe's own bug must not hide the others' answers
            result = Probe(part, "fail", _first_line(exc), "report this as a bug of foundation doctor")
        for probe in result if isinstance(result, list) else [result]:
            probes.append(
                Probe(probe.part, probe.status, redact(probe.detail), redact(probe.fix), time.perf_counter() - began)
            )
    return probes
