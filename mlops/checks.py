"""Load every model spec of a workspace and check it against the data model, with `file:line` errors.

`load_model_specs` is the one function reading spec files; `check_against_columns` and `check_estimators` are pure
over what they are given (the feature table's columns, importable classes), so the tests call them directly.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from foundation.core.workspace import Workspace
from foundation.specs.errors import SpecError
from foundation.specs.model import ModelSpec
from foundation.specs.validation import validate_document
from foundation.specs.yaml_source import YamlDocument, load_yaml

ML_DIR = "ml"
DOCS_HINT = "docs/mlops.md"


@dataclass(frozen=True)
class ModelRef:
    """A validated model spec and where it was declared."""

    usecase: str
    spec: ModelSpec
    path: Path
    doc: YamlDocument = field(compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.usecase}/{self.spec.name}"

    @property
    def registered_name(self) -> str:
        return self.spec.registered_name(self.usecase)

    def line(self, *loc: str | int) -> int | None:
        return self.doc.line_of(tuple(loc))


@dataclass
class ModelScan:
    models: list[ModelRef] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not [e for e in self.errors if e.severity == "error"]


def model_files(workspace_root: Path) -> list[tuple[str, Path]]:
    base = workspace_root / "usecases"
    if not base.is_dir():
        return []
    return [
        (path.parent.parent.name, path)
        for path in sorted(base.glob(f"*/{ML_DIR}/*.y*ml"))
        if not path.parent.parent.name.startswith((".", "_"))
    ]


def _docs_hint(error: SpecError) -> SpecError:
    hint = error.hint.replace("docs/sources.md", DOCS_HINT)
    return SpecError(error.path, error.line, error.field, error.message, hint, error.severity)


def load_model_specs(workspace_root: Path) -> ModelScan:
    """Read and validate every `usecases/<uc>/ml/*.yaml` (syntax and format; not the data model)."""
    scan = ModelScan()
    seen: dict[tuple[str, str], Path] = {}
    for usecase, path in model_files(workspace_root):
        doc, errors = load_yaml(path)
        scan.errors.extend(errors)
        if doc is None:
            continue
        spec, errors = validate_document(doc, ModelSpec)
        scan.errors.extend(_docs_hint(e) for e in errors)
        if spec is None:
            continue
        if (usecase, spec.name) in seen:
            scan.errors.append(
                SpecError(
                    path,
                    doc.line_of(("name",)),
                    "name",
                    f"model {spec.name!r} is already declared in {seen[(usecase, spec.name)].name}",
                    "model names are unique within a use case",
                )
            )
            continue
        seen[(usecase, spec.name)] = path
        scan.models.append(ModelRef(usecase, spec, path, doc))
    return scan


def _closest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"known columns: {', '.join(sorted(known))}"


def check_against_columns(ref: ModelRef, columns: list[str], *, verified: bool) -> list[SpecError]:
    """Columns the spec names must exist in the feature table; the baseline rule must bind to it.

    `verified`: `columns` is the published table's schema (mismatches are errors); otherwise they are only the
    documented columns of the dbt model, and a mismatch is a warning until the table is published.
    """
    spec = ref.spec
    severity = "error" if verified else "warning"
    where = f"the feature table {spec.feature_table!r}" + (
        "" if verified else " (documented columns; not published yet)"
    )
    errors: list[SpecError] = []

    def unknown(loc: tuple[str | int, ...], name: str, what: str) -> None:
        errors.append(
            SpecError(
                ref.path,
                ref.line(*loc),
                ".".join(str(p) for p in loc),
                f"unknown {what} {name!r}: no such column in {where}",
                _closest(name, columns),
                severity,
            )
        )

    if spec.target not in columns:
        unknown(("target",), spec.target, "target")
    if spec.time not in columns:
        unknown(("time",), spec.time, "time column")
    for i, name in enumerate(spec.entity):
        if name not in columns:
            unknown(("entity", i), name, "entity column")
    for i, name in enumerate(spec.features.include or []):
        if name not in columns:
            unknown(("features", "include", i), name, "feature")
    for i, name in enumerate(spec.features.exclude if verified else []):  # excluding a missing column is harmless
        if name not in columns:
            unknown(("features", "exclude", i), name, "excluded column")
    if spec.target in spec.feature_columns(columns):
        errors.append(
            SpecError(ref.path, ref.line("features"), "features", "the target is among the features", "exclude it")
        )
    if verified:
        errors.extend(_sql_errors(ref, columns))
    return errors


def _sql_errors(ref: ModelRef, columns: list[str]) -> list[SpecError]:
    """Bind the baseline rule and the row filter against an empty table of the columns: DuckDB names what is wrong."""
    con = duckdb.connect()
    try:
        con.execute("create table t (" + ", ".join(f'"{c}" varchar' for c in columns) + ")")
        errors = []
        for loc, expression in ((("baseline", "rule"), ref.spec.baseline.rule), (("row_filter",), ref.spec.row_filter)):
            if expression is None:
                continue
            try:
                # try_cast keeps the binder from failing on types: only names and syntax are checked here
                con.execute(f"explain select 1 from t where ({expression}) is not null")
            except duckdb.Error as exc:
                message = str(exc).splitlines()[0]
                if "Conversion" in message or "cast" in message.lower():
                    continue
                errors.append(
                    SpecError(
                        ref.path,
                        ref.line(*loc),
                        ".".join(loc),
                        f"the expression does not bind to the feature table: {message}",
                        f"use SQL over the columns of {ref.spec.feature_table} (DuckDB dialect)",
                    )
                )
        return errors
    finally:
        con.close()


def import_class(path: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def check_estimators(ref: ModelRef) -> list[SpecError]:
    """Each candidate's class must import, be a classifier with predict_proba, and know its hyper-parameters."""
    errors: list[SpecError] = []
    for i, candidate in enumerate(ref.spec.candidates):
        path = candidate.class_path
        module_name, _, class_name = path.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            errors.append(
                SpecError(
                    ref.path,
                    ref.line("candidates", i, "estimator"),
                    f"candidates[{i}].estimator",
                    f"candidate class {path!r} does not exist: cannot import module {module_name!r} ({exc})",
                    "install the package, or fix the module path",
                )
            )
            continue
        cls = getattr(module, class_name, None)
        if cls is None:
            names = [n for n, v in vars(module).items() if inspect.isclass(v)]
            close = difflib.get_close_matches(class_name, names, n=1, cutoff=0.6)
            errors.append(
                SpecError(
                    ref.path,
                    ref.line("candidates", i, "estimator"),
                    f"candidates[{i}].estimator",
                    f"candidate class {path!r} does not exist: {module_name} has no {class_name!r}",
                    f"did you mean {module_name}.{close[0]}?" if close else "check the class name",
                )
            )
            continue
        if not inspect.isclass(cls) or not hasattr(cls, "predict_proba") or not hasattr(cls, "get_params"):
            errors.append(
                SpecError(
                    ref.path,
                    ref.line("candidates", i, "estimator"),
                    f"candidates[{i}].estimator",
                    f"{path!r} is not a scikit-learn style classifier with predict_proba",
                    "use a classifier class (fit, predict_proba, get_params)",
                )
            )
            continue
        known = sorted(cls().get_params(deep=False))
        for name in candidate.params:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                errors.append(
                    SpecError(
                        ref.path,
                        ref.line("candidates", i, "params", name),
                        f"candidates[{i}].params.{name}",
                        f"{class_name} has no hyper-parameter {name!r}",
                        f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}",
                    )
                )
    return errors


def check_model_specs(workspace: Workspace) -> list[SpecError]:
    """Every model spec: its format, its feature table (a dbt model, published or documented), its columns, the
    baseline rule and row filter (bound by DuckDB), and its candidates' classes and hyper-parameters."""
    from foundation.engine.dbt.checks import scan_model_columns
    from foundation.engine.dbt.project import dbt_paths
    from mlops.dataset import published_columns

    scan = load_model_specs(workspace.root)
    errors = list(scan.errors)
    paths = dbt_paths(workspace)
    documented = scan_model_columns(paths) if paths.exists() else {}
    for ref in scan.models:
        errors.extend(check_estimators(ref))
        table = ref.spec.feature_table
        columns = published_columns(workspace, ref.usecase, table)
        if columns is None and table not in documented:
            close = difflib.get_close_matches(table, list(documented), n=1, cutoff=0.6)
            errors.append(
                SpecError(
                    ref.path,
                    ref.line("feature_table"),
                    "feature_table",
                    f"no dbt model named {table!r} (nor a published table of {ref.usecase})",
                    f"did you mean {close[0]!r}?" if close else f"models: {', '.join(sorted(documented)) or 'none'}",
                )
            )
            continue
        if columns is not None:
            errors.extend(check_against_columns(ref, columns, verified=True))
        elif documented.get(table):
            errors.extend(check_against_columns(ref, sorted(documented[table]), verified=False))
    return errors
