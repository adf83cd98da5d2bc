"""The workspace's dbt project, made ready to run: profile, generated files, and a fresh manifest.

What is derived from the workspace YAML is generated, never hand-written (and git-ignored):
- `models/<uc>/_generated/sources.yml`: one dbt source per source YAML, pointing at the DuckDB view
  `bronze.<uc>__<source>` that `foundation.engine.dbt.warehouse` keeps over the bronze Delta snapshot;
- `models/<uc>/_generated/<uc>_source_status.sql`: rows and last load per source (the data freshness KPI reads it);
- `models/<uc>/kpis/`: one `kpi_<id>` model per KPI declaration, with its contract and catalogue metadata.
dbt's own files (target, logs, profile) live in the workspace state folder, so several workspaces can share one
project folder without sharing state. `prepare_project` runs `dbt parse` only when an input changed.

The framework's own dbt macros (cross-engine dispatch, `kpi_dimensions_star`, the bronze-view hook, generic tests)
ship inside this package (`foundation/engine/dbt/macros/`), never copied into a project: every project lists
`"{{ env_var('FOUNDATION_DBT_MACROS') }}"` in its `macro-paths`, and foundation sets that variable to the installed
folder for every dbt it starts (our subprocesses, and dagster-dbt's, which inherit this process's environment).
The macros thus join the root project's namespace, exactly as if they sat in its `macros/` folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from foundation.core.workspace import KPIS_DIR, SourceRef, Workspace, load_kpis
from foundation.engine.lakehouse.partitions import partition_column
from foundation.specs.errors import SpecError, SpecValidationError
from foundation.specs.kpi import KpiRef
from foundation.specs.kpi_columns import kpi_column_errors
from kpi_catalog.compile import contract_types, kpi_model_sql, kpi_properties

PROFILE_NAME = "foundation"
BRONZE_SCHEMA = "bronze"
GENERATED_DIR = "_generated"
LINEAGE_COLUMNS = {"_load_id": "varchar", "_loaded_at": "timestamptz", "_source_file": "varchar"}
FRAMEWORK_MACROS_ENV = "FOUNDATION_DBT_MACROS"
FRAMEWORK_MACROS_ENTRY = "{{ env_var('" + FRAMEWORK_MACROS_ENV + "') }}"  # what dbt_project.yml's macro-paths lists
MACRO_DEF_RE = re.compile(r"{%-?\s*(?:macro|test)\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def framework_macros_dir() -> Path:
    """The framework's dbt macros, as installed with this package (a checkout's folder, or site-packages')."""
    return Path(__file__).resolve().parent / "macros"


def expose_framework_macros() -> Path:
    """Point FOUNDATION_DBT_MACROS at the installed macros, for every dbt this process starts from now on."""
    folder = framework_macros_dir()
    os.environ[FRAMEWORK_MACROS_ENV] = str(folder)
    return folder


@dataclass(frozen=True)
class DbtPaths:
    project_dir: Path
    state_dir: Path  # <workspace state>/dbt: profile, target, logs

    @property
    def profiles_dir(self) -> Path:
        return self.state_dir

    @property
    def target_dir(self) -> Path:
        return self.state_dir / "target"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def manifest(self) -> Path:
        return self.target_dir / "manifest.json"

    @property
    def fingerprint_file(self) -> Path:
        return self.target_dir / "foundation_inputs.sha256"

    def exists(self) -> bool:
        return (self.project_dir / "dbt_project.yml").is_file()


def dbt_paths(workspace: Workspace) -> DbtPaths:
    return DbtPaths(Path(workspace.resolve(workspace.settings.dbt.project_dir)), workspace.state_dir / "dbt")


def dbt_executable() -> str:
    """The `dbt` next to this interpreter (a venv's bin is not always on PATH), else whatever PATH has."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_env(paths: DbtPaths) -> dict[str, str]:
    return {
        **os.environ,
        "DBT_PROFILES_DIR": str(paths.profiles_dir),
        "DBT_TARGET_PATH": str(paths.target_dir),
        "DBT_LOG_PATH": str(paths.log_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROJECT_DIR": str(paths.project_dir),
        FRAMEWORK_MACROS_ENV: str(framework_macros_dir()),
    }


# -- pure: text of the generated files -------------------------------------------------------------------------


def profile_yaml(
    warehouse_path: str, target: str, threads: int, memory_limit: str, spark_output: dict | None = None
) -> str:
    """The dbt profile: DuckDB's output, and with `spark_output` a `spark` output too (then the default target).

    With target spark the `duckdb` output stays, so `dbt build --target duckdb` compares the two engines.
    """
    duckdb_name = "duckdb" if spark_output is not None else target
    outputs: dict = {
        duckdb_name: {
            "type": "duckdb",
            "path": warehouse_path,
            "threads": threads,
            "settings": {"memory_limit": memory_limit},
        }
    }
    if spark_output is not None:
        outputs[target] = spark_output
    profile = {PROFILE_NAME: {"target": target, "outputs": outputs}}
    return "# generated by foundation from foundation.yaml: edit that, not this file\n" + yaml.safe_dump(profile)


def source_view_name(usecase: str, source: str) -> str:
    return f"{usecase}__{source}"


def sources_yaml(usecase: str, sources: list[SourceRef], root: Path, description: str | None = None) -> str:
    """dbt sources of one use case, derived from its source YAML (names, docs, owners, declared columns)."""
    tables = []
    for source in sources:
        spec = source.spec
        columns = [
            {"name": c.name, "description": c.description or "", "data_type": c.type or ""} for c in spec.columns
        ]
        columns += (
            [
                {"name": n, "description": "lineage column added at ingestion", "data_type": t}
                for n, t in LINEAGE_COLUMNS.items()
            ]
            if spec.columns
            else []
        )
        tables.append(
            {
                "name": spec.name,
                "identifier": source_view_name(usecase, spec.name),
                "description": spec.description,
                "config": {
                    "meta": {
                        "source_yaml": str(source.path.relative_to(root)),
                        "owner": spec.owner,
                        "load_mode": spec.load.mode,
                    },
                    # A partitioned source: dbt reads only a batch's window of it for a model built per partition.
                    **({"event_time": partition_column(spec)[0]} if spec.partitions else {}),
                },
                **({"columns": columns} if columns else {}),
            }
        )
    document = {
        "version": 2,
        "sources": [
            {
                "name": usecase,
                "schema": BRONZE_SCHEMA,
                "description": description or f"Bronze tables of {usecase}, landed from its source YAML",
                "tables": tables,
            }
        ],
    }
    return (
        f"# generated by foundation from usecases/{usecase}/sources/*.yaml: edit those, not this file\n"
        + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    )


def source_status_sql(usecase: str, sources: list[SourceRef]) -> str:
    """Rows and last load per source of a use case, with the hours since that load (at build time)."""
    parts = [
        f"    select '{s.name}' as source, count(*) as row_count, max(_loaded_at) as last_loaded_at\n"
        f"    from {{{{ source('{usecase}', '{s.name}') }}}}"
        for s in sources
    ]
    return (
        "-- generated by foundation from the source YAML of this use case\n"
        "with loads as (\n" + "\n    union all\n".join(parts) + "\n)\n"
        "select\n"
        "    source,\n"
        "    row_count,\n"
        "    last_loaded_at,\n"
        "    cast(current_timestamp as date) as status_date,\n"
        "    {{ seconds_between('last_loaded_at', 'current_timestamp') }} / 3600.0 as hours_since_load\n"
        "from loads\n"
    )


def source_status_properties(usecase: str) -> str:
    model = {
        "name": f"{usecase}_source_status",
        "description": f"One row per source of {usecase}: rows landed, last load, hours since it (at build time).",
        "columns": [
            {"name": "source", "description": "Source name", "data_tests": ["not_null", "unique"]},
            {"name": "row_count", "description": "Rows in the bronze table"},
            {"name": "last_loaded_at", "description": "Time of the last load that landed rows"},
            {"name": "status_date", "description": "Date of the build"},
            {"name": "hours_since_load", "description": "Hours from the last load to the build"},
        ],
    }
    return yaml.safe_dump({"version": 2, "models": [model]}, sort_keys=False)


# -- I/O: writing the generated files and parsing ---------------------------------------------------------------


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def _remove_stale(folder: Path, keep: set[Path]) -> None:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and path not in keep:
            path.unlink()


def generate_files(workspace: Workspace, paths: DbtPaths, kpis: list[KpiRef]) -> list[Path]:
    """Write the profile and every generated model file; remove generated files whose YAML is gone."""
    from foundation.engine.dbt.spark import SPARK_TARGET, spark_profile_output, spark_state_dir

    settings = workspace.settings
    spark = settings.dbt.target == SPARK_TARGET
    written = [paths.profiles_dir / "profiles.yml"]
    _write_if_changed(
        written[0],
        profile_yaml(
            workspace.resolve(settings.duckdb.path),
            settings.dbt.target,
            threads=settings.duckdb.threads or min(4, os.cpu_count() or 1),
            memory_limit=settings.duckdb.memory_limit,
            spark_output=spark_profile_output(spark_state_dir(workspace), settings.dbt.spark_conf) if spark else None,
        ),
    )
    types = contract_types("spark" if spark else "duckdb")
    models = paths.project_dir / "models"
    by_usecase: dict[str, list[SourceRef]] = {}
    for source in workspace.sources():
        by_usecase.setdefault(source.usecase, []).append(source)
    kpis_by_usecase: dict[str, list[KpiRef]] = {}
    for kpi in kpis:
        if kpi.spec.predictions is None:  # model KPIs are published by the predictions asset, not built by dbt
            kpis_by_usecase.setdefault(kpi.usecase, []).append(kpi)
    for usecase in sorted(set(by_usecase) | set(kpis_by_usecase)):
        generated = models / usecase / GENERATED_DIR
        keep: set[Path] = set()
        sources = by_usecase.get(usecase, [])
        if sources:
            uc_spec = workspace.scan.usecases.get(usecase)
            files = {
                generated / "sources.yml": sources_yaml(
                    usecase, sources, workspace.root, uc_spec.description if uc_spec else None
                ),
                generated / f"{usecase}_source_status.sql": source_status_sql(usecase, sources),
                generated / "source_status.yml": source_status_properties(usecase),
            }
            for path, text in files.items():
                _write_if_changed(path, text)
            keep |= set(files)
        _remove_stale(generated, keep)
        kpi_folder = models / usecase / KPIS_DIR
        keep = set()
        uc_kpis = kpis_by_usecase.get(usecase, [])
        listed = []
        for kpi in uc_kpis:
            relative = kpi.path.relative_to(workspace.root)
            path = kpi_folder / f"{kpi.spec.model_name}.sql"
            _write_if_changed(path, kpi_model_sql(kpi, relative))
            keep.add(path)
            listed.append((kpi, str(relative)))
        if listed:
            path = kpi_folder / "_kpis.yml"
            _write_if_changed(path, kpi_properties(listed, types))
            keep.add(path)
        _remove_stale(kpi_folder, keep)
        written.extend(sorted(keep))
    # Use cases that lost all their sources and KPIs: their generated folders go too.
    for folder in models.glob(f"*/{GENERATED_DIR}"):
        if folder.parent.name not in by_usecase:
            _remove_stale(folder, set())
    return written


def inputs_fingerprint(paths: DbtPaths) -> str:
    """A hash of every file dbt parses (project, models, macros, profile, the framework's macros): the manifest is
    stale when it changes (an upgraded framework included)."""
    digest = hashlib.sha256()
    files = [paths.project_dir / "dbt_project.yml", paths.profiles_dir / "profiles.yml"]
    for sub in ("models", "macros", "tests", "snapshots", "seeds", "analyses"):
        folder = paths.project_dir / sub
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in files:
        if path.exists():
            digest.update(str(path.relative_to(paths.project_dir.parent)).encode())
            digest.update(path.read_bytes())
    framework = framework_macros_dir()
    for path in sorted(framework.rglob("*.sql")):
        digest.update(f"<framework>/{path.relative_to(framework).as_posix()}".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def macro_definitions(text: str) -> list[tuple[str, int]]:
    """(name, line) of every `{% macro name(` / `{% test name(` in a macro file's text."""
    return [(m.group(1), text.count("\n", 0, m.start()) + 1) for m in MACRO_DEF_RE.finditer(text)]


def framework_macro_errors(
    project_file: Path, project: dict, project_macros: dict[Path, str], framework: dict[str, str]
) -> list[SpecError]:
    """What stops a project from using the framework's macros, before dbt says it less clearly.

    Pure: `project` is the parsed dbt_project.yml, `project_macros` the text of the project's own macro files,
    `framework` maps each framework macro name to its file (relative to foundation/engine/dbt/macros/).
    """
    errors: list[SpecError] = []
    macro_paths = project.get("macro-paths") or ["macros"]
    if not any(FRAMEWORK_MACROS_ENV in str(entry) for entry in macro_paths):
        errors.append(
            SpecError(
                project_file,
                None,
                "macro-paths",
                "does not list the framework's dbt macros (seconds_between, kpi_dimensions_star... that the "
                "generated models call)",
                f'write macro-paths: ["macros", "{FRAMEWORK_MACROS_ENTRY}"]; foundation sets {FRAMEWORK_MACROS_ENV}',
            )
        )
    for path, text in sorted(project_macros.items()):
        for name, line in macro_definitions(text):
            if name in framework:
                errors.append(
                    SpecError(
                        path,
                        line,
                        name,
                        f"is also defined by the framework (foundation/engine/dbt/macros/{framework[name]}), "
                        "and dbt refuses "
                        "two macros of one name",
                        "delete this copy (a platform made by an older `foundation init` has them under "
                        "dbt_project/macros/foundation/), or rename your macro",
                    )
                )
    return errors


def check_framework_macros(paths: DbtPaths) -> list[SpecError]:
    """`framework_macro_errors` on the files of the project at `paths` (reads them; no dbt)."""
    project_file = paths.project_dir / "dbt_project.yml"
    try:
        project = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []  # dbt reports an unreadable project itself, with its own position
    own_macros: dict[Path, str] = {}
    for entry in project.get("macro-paths") or ["macros"]:
        folder = paths.project_dir / str(entry)
        if "{{" in str(entry) or not folder.is_dir():
            continue
        own_macros |= {p: p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.sql"))}
    root = framework_macros_dir()
    framework = {
        name: p.relative_to(root).as_posix()
        for p in sorted(root.rglob("*.sql"))
        for name, _ in macro_definitions(p.read_text(encoding="utf-8"))
    }
    return framework_macro_errors(project_file, project, own_macros, framework)


class DbtPrepareError(RuntimeError):
    """The dbt project does not parse; the message carries dbt's own explanation."""


def prepare_project(workspace: Workspace, force: bool = False) -> DbtPaths:
    """Generate the derived files, then `dbt parse` when the manifest is missing or stale. Returns the paths.

    Raises SpecValidationError for invalid KPI YAML and DbtPrepareError when dbt cannot parse the project.
    """
    paths = dbt_paths(workspace)
    if not paths.exists():
        raise DbtPrepareError(
            f"no dbt project at {paths.project_dir} (dbt.project_dir in foundation.yaml): "
            "create it (see docs/data-model.md) or fix the setting"
        )
    scan = load_kpis(workspace.root)
    if not scan.ok:
        raise SpecValidationError([e for e in scan.errors if e.severity == "error"])
    from foundation.engine.dbt.checks import check_dbt_project

    # Before dbt parses: its own messages for a missing source or model do not name the YAML to fix.
    errors = check_dbt_project(paths, workspace.sources(), scan.kpis) + check_framework_macros(paths)
    if errors:
        raise SpecValidationError(errors)
    expose_framework_macros()  # for the parse below, and for every dbt this process starts later (dagster-dbt's)
    generate_files(workspace, paths, scan.kpis)
    fingerprint = inputs_fingerprint(paths)
    fresh = (
        paths.manifest.exists()
        and paths.fingerprint_file.exists()
        and paths.fingerprint_file.read_text(encoding="utf-8") == fingerprint
    )
    if fresh and not force:
        return paths
    result = subprocess.run(
        [dbt_executable(), "parse", "--project-dir", str(paths.project_dir), "--log-format", "json"],
        env=dbt_env(paths),
        capture_output=True,
        text=True,
        cwd=paths.project_dir,
    )
    if result.returncode != 0:
        raise DbtPrepareError(f"dbt parse failed in {paths.project_dir}:\n{dbt_error_lines(result.stdout)}")
    errors = check_kpi_models(scan.kpis, manifest_columns(load_manifest(paths)))
    if errors:
        raise SpecValidationError(errors)
    paths.fingerprint_file.write_text(fingerprint, encoding="utf-8")
    return paths


def dbt_error_lines(json_log: str) -> str:
    """The error messages of a dbt run logged with --log-format json (the whole log when none is found)."""
    messages = []
    for line in json_log.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        info = event.get("info", {})
        if info.get("level") == "error":
            messages.append(info.get("msg", ""))
    return "\n".join(m for m in messages if m) or json_log[-3000:]


def load_manifest(paths: DbtPaths) -> dict:
    return json.loads(paths.manifest.read_text(encoding="utf-8"))


def model_nodes(manifest: dict) -> dict[str, dict]:
    """Model name -> manifest node."""
    return {n["name"]: n for n in manifest.get("nodes", {}).values() if n.get("resource_type") == "model"}


def manifest_columns(manifest: dict) -> dict[str, set[str]]:
    """Model name -> documented column names, from a parsed manifest."""
    return {name: set(node.get("columns", {})) for name, node in model_nodes(manifest).items()}


def check_kpi_models(kpis: list[KpiRef], models: dict[str, set[str]]) -> list[SpecError]:
    """A KPI's model must exist; its time and dimension columns, and those its expression and filter name, must be
    documented columns of that model.

    Pure: `models` maps model names to their documented columns (from the manifest, or from scanning the project).
    """
    errors: list[SpecError] = []
    for kpi in kpis:
        spec = kpi.spec
        if spec.model is None:
            continue
        if spec.model not in models:
            known = ", ".join(sorted(m for m in models if not m.startswith("kpi_")))
            errors.append(
                SpecError(
                    kpi.path,
                    kpi.line_of.get("model"),
                    "model",
                    f"no dbt model named {spec.model!r}",
                    f"use one of: {known}",
                )
            )
            continue
        columns = models[spec.model]
        if not columns:
            continue  # an undocumented model: dbt itself reports unknown columns at build time
        wanted = [("time", spec.time)] + [("dimensions", d) for d in spec.dimensions]
        for key, column in wanted:
            if column and column not in columns:
                errors.append(
                    SpecError(
                        kpi.path,
                        kpi.line_of.get(key),
                        key,
                        f"model {spec.model!r} has no column {column!r}",
                        f"use one of its documented columns: {', '.join(sorted(columns))}",
                    )
                )
        errors.extend(kpi_column_errors(kpi, columns))  # the expression and filter name only its columns
    return errors
