"""Model specs checked against the data model: the feature table exists (published, or documented by dbt), the columns
a spec names are in it, and its baseline rule and row filter bind to them, with `file:line` errors; KPIs on
predictions name a model spec. Light imports only: `foundation check` loads this module (no pandas, no scikit-learn).

Loading the specs is `foundation.core.workspace.load_model_specs`; `check_against_columns` is pure over the columns
it is given, so the tests call it directly.
"""

from __future__ import annotations

import difflib

import duckdb

from foundation.core.workspace import Workspace, load_model_specs, model_files
from foundation.engine.dbt.paths import dbt_paths
from foundation.engine.dbt.static_validation import scan_model_columns
from foundation.specs.errors import SpecError
from foundation.specs.estimators import check_estimators
from foundation.specs.kpi import KpiRef
from foundation.specs.model import ModelRef, ModelScan, SalvagedSpec, salvage_model_spec
from foundation.specs.yaml_source import load_yaml
from mlops.dataset import published_columns


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
    if spec.split.group is not None and spec.split.group not in columns:
        unknown(("split", "group"), spec.split.group, "unit column")
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
        baseline = ref.spec.baseline
        expressions = ((("baseline", "rule"), baseline.rule), (("baseline", "expression"), baseline.expression))
        for loc, expression in (*expressions, (("row_filter",), ref.spec.row_filter)):
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


def _salvaged_refs(workspace: Workspace, scan: ModelScan) -> list[tuple[ModelRef, SalvagedSpec | None]]:
    """The specs that failed validation, with their refused parts dropped: checked too, so one `check` lists every
    mistake of a file (a misspelt key no longer hides a bad baseline rule)."""
    valid = {ref.path for ref in scan.models}
    refused = {e.path for e in scan.errors if e.severity == "error"} - valid
    salvaged = []
    for usecase, path in model_files(workspace.root):
        if path not in refused:
            continue
        doc, _ = load_yaml(path)
        rest = salvage_model_spec(doc.data) if doc is not None else None
        if rest is not None:
            salvaged.append((ModelRef(usecase, rest.spec, path, doc), rest))
    return salvaged


def check_model_specs(workspace: Workspace) -> list[SpecError]:
    """Every model spec: its format, its feature table (a dbt model, published or documented), its columns, the
    baseline rule and row filter (bound by DuckDB), and its candidates' classes and hyper-parameters. A spec that
    fails its format is checked on what is left of it, so every mistake shows at once."""
    scan = load_model_specs(workspace.root)
    errors = list(scan.errors)
    paths = dbt_paths(workspace)
    documented = scan_model_columns(paths) if paths.exists() else {}
    refs: list[tuple[ModelRef, SalvagedSpec | None]] = [(ref, None) for ref in scan.models]
    for ref, salvaged in refs + _salvaged_refs(workspace, scan):
        found = check_estimators(ref)
        if salvaged is None or not salvaged.is_stand_in("feature_table"):
            found += _data_model_errors(workspace, ref, documented)
        # what a check finds in a stand-in was not written by the user (the format error already names the field)
        errors.extend(e for e in found if salvaged is None or not salvaged.is_stand_in(e.field))
    return errors


def _data_model_errors(workspace: Workspace, ref: ModelRef, documented: dict[str, set[str]]) -> list[SpecError]:
    table = ref.spec.feature_table
    columns = published_columns(workspace, ref.usecase, table)
    if columns is None and table not in documented:
        close = difflib.get_close_matches(table, list(documented), n=1, cutoff=0.6)
        return [
            SpecError(
                ref.path,
                ref.line("feature_table"),
                "feature_table",
                f"no dbt model named {table!r} (nor a published table of {ref.usecase})",
                f"did you mean {close[0]!r}?" if close else f"models: {', '.join(sorted(documented)) or 'none'}",
            )
        ]
    if columns is not None:
        return check_against_columns(ref, columns, verified=True)
    if documented.get(table):
        return check_against_columns(ref, sorted(documented[table]), verified=False)
    return []


def check_model_kpis(kpis: list[KpiRef], models: list[ModelRef]) -> list[SpecError]:
    """Pure: a model KPI must name a model spec of its own use case."""
    errors = []
    for kpi in kpis:
        name = kpi.spec.predictions
        if name is None:
            continue
        known = sorted(m.spec.name for m in models if m.usecase == kpi.usecase)
        if name not in known:
            errors.append(
                SpecError(
                    kpi.path,
                    kpi.line_of.get("predictions"),
                    "predictions",
                    f"no model spec {name!r} in use case {kpi.usecase!r}",
                    f"use one of: {', '.join(known)}" if known else f"declare it in usecases/{kpi.usecase}/ml/",
                )
            )
    return errors
