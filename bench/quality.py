"""Benchmark: what quality rules cost an ingest, and pandera against the same rules as one DuckDB query, in one run.

Run from the repository root::

    .venv/bin/python bench/quality.py                   # 5M rows
    .venv/bin/python bench/quality.py --rows 1000000

It reuses bench/ingest.py's machinery (the cached telemetry CSV under --workdir, a snapshot of the code, child
processes measured from outside: wall time, and peak RSS from `/usr/bin/time -v` and a psutil sample of the whole
process tree every 50 ms), and measures:

(a) `foundation --workspace WS ingest --json` of the N-row CSV with **no rules** (columns declared and typed like
    usecases/fleet_maintenance/sources/engine_telemetry.yaml, `load: {mode: append}`, a fresh .foundation per run);
(b) the same with **ten typical rules** (COLUMN_RULES, TABLE_RULES below): eight row rules run by pandera on every
    batch in flight, a completeness load rule, and a `unique [truck_id, ts]` table rule run as SQL after the commit.
    Targets (issue 3): rules add <= 25% to ingest time and <= 20% to peak memory: ratios b / a.
(b') the same without the table rule, to split (b) - (a) between the rules in flight and the SQL after the commit.
(c) the anchor: in a child, the first min(N, --slice) typed rows in memory as Arrow (built by foundation's own
    landing SQL, so the types are those the gate sees), then the eight row rules timed as
    - `foundation.engine.quality.row_rules.RowValidator.validate` on each batch with every rule left to pandera (what
    the
      gate ran before the built-in checks moved into the landing query; pandera, polars),
    - the bare pandera polars schema on each batch (without mapping failure cases back to rows),
    - the equivalent `pandera.pandas` schema on each batch (conversion to pandas timed apart),
    - ONE DuckDB query `SELECT count(*) FILTER (WHERE NOT (...)) ... FROM arrow_table` over the slice (the anchor),
      and the same query per batch, and a variant that returns the failing rows with their rule names;
    on the clean data and on a copy with 1% of the rows made to fail one rule; plus the table rule alone (the
    `unique` SQL on (b)'s Delta table) to show where (b) - (a) goes.

A benchmark reports, it does not fail: the exit code is 0 whatever the numbers; each target line says met or missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
FOUNDATION = str(Path(PYTHON).with_name("foundation"))
MIB = 1024 * 1024

TIME_TARGET = 1.25  # rules add at most 25% to ingest time
RSS_TARGET = 1.20  # ... and at most 20% to peak memory
SLICE_ROWS = 1_000_000  # the in-memory anchor uses at most this many rows
DIRTY_EVERY = 100  # the "1% failing" variant: every 100th row fails engine_temp_c__between

COLUMNS = [  # as usecases/fleet_maintenance/sources/engine_telemetry.yaml declares them, without its checks
    ("truck_id", None, "varchar", True),
    ("ts", None, "timestamp", True),
    ("engine_temp_c", "Engine Temp [C]", "double", False),
    ("oil_pressure_kpa", "Oil Pressure [kPa]", "double", False),
    ("vibration_mm_s", "Vibration [mm/s]", "double", False),
    ("rpm", "RPM", "integer", False),
    ("coolant_temp_c", "Coolant Temp [C]", "double", False),
    ("mileage_km", "Mileage [km]", "double", False),
]
COLUMN_RULES = {  # 8 column/row rules ...
    "truck_id": "[{regex: '^TRK-\\d{4}$'}]",
    "ts": "[{not_null: true}]",
    "engine_temp_c": "[{between: [-40, 200]}]",
    "oil_pressure_kpa": "[{between: [0, 1000]}]",
    "rpm": "[{between: [0, 4000]}]",
    "coolant_temp_c": "[{between: [-40, 150]}]",
    "mileage_km": "[{min: 0}]",
}
TABLE_RULES = """\
checks:
  - expression: coolant_temp_c < engine_temp_c + 50
  - completeness: {max_null_percent: {engine_temp_c: 2}}
  - unique: [truck_id, ts]
"""  # ... + an expression (row), completeness (load), unique (table): ten rules
USECASE_YAML = """\
title: Quality benchmark
description: Throwaway workspace of bench/quality.py.
owner: bench@example.com
type: analytics_prediction
phase: development
refresh: manual
"""


def source_yaml(csv_path: Path, rules: bool, table_rule: bool = True) -> str:
    lines = [
        "name: telemetry",
        "description: Benchmark telemetry, one CSV written by foundation.demo.fleet_data.write_telemetry_csv.",
        "owner: bench@example.com",
        "schedule: manual",
        f"extract: {{type: csv, path: {json.dumps(str(csv_path))}}}",
        "load: {mode: append}",
        "columns:",
    ]
    for name, raw, kind, required in COLUMNS:
        parts = [f"name: {name}"]
        parts += [f"from: {json.dumps(raw)}"] if raw else []
        parts += [f"type: {kind}"]
        parts += ["required: true"] if required else []
        parts += [f"checks: {COLUMN_RULES[name]}"] if rules and name in COLUMN_RULES else []
        lines.append("  - {" + ", ".join(parts) + "}")
    text = "\n".join(lines) + "\n"
    if rules:
        text += TABLE_RULES if table_rule else TABLE_RULES.replace("  - unique: [truck_id, ts]\n", "")
    return text + "on_invalid_rows: quarantine\n"


def ingest_helpers() -> Any:
    """bench/ingest.py as a module: measure(), telemetry_csv(), snapshot_code(), least_disturbed()..."""
    spec = importlib.util.spec_from_file_location("bench_ingest", Path(__file__).with_name("ingest.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ingest"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------------- (a), (b)


def make_workspace(root: Path, csv_path: Path, rules: bool, table_rule: bool = True) -> Path:
    sources = root / "usecases" / "bench" / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    roots = json.dumps([str(csv_path.parent)])  # the cached CSV lives outside the workspace
    settings = f"state_dir: .foundation\ningest: {{allowed_roots: {roots}}}\n"
    (root / "foundation.yaml").write_text(settings, encoding="utf-8")
    (root / "usecases" / "bench" / "usecase.yaml").write_text(USECASE_YAML, encoding="utf-8")
    (sources / "telemetry.yaml").write_text(source_yaml(csv_path, rules, table_rule), encoding="utf-8")
    return root


# --------------------------------------------------------------------------------------------------- (c) child


def _best(seconds: list[float]) -> float:
    return min(seconds)


def sql_condition(check: Any) -> str:
    """The SQL a row rule means: a row fails when NOT (condition) is true (null = unknown = passes, like pandera)."""
    from foundation.engine.sql import quote_ident, quote_literal
    from foundation.specs.rules import (
        AcceptedValuesRule,
        BetweenRule,
        ExpressionRule,
        MaxRule,
        MinRule,
        NotNullRule,
        RegexRule,
    )

    col = quote_ident(check.column) if check.column else ""
    match check.rule:
        case NotNullRule():
            return f"{col} IS NOT NULL"
        case BetweenRule(between=(low, high)):
            return f"{col} BETWEEN {low!r} AND {high!r}"
        case MinRule(min=low):
            return f"{col} >= {low!r}"
        case MaxRule(max=high):
            return f"{col} <= {high!r}"
        case AcceptedValuesRule(accepted_values=values):
            return f"{col} IN ({', '.join(quote_literal(str(v)) for v in values)})"
        case RegexRule(regex=pattern):
            return f"regexp_matches({col}, {quote_literal(pattern)})"
        case ExpressionRule(expression=sql):
            return sql
    raise ValueError(f"no SQL for {check.name}")


def pandas_schema(checks: list[Any], columns: list[str]) -> Any:
    """The same row rules as a `pandera.pandas` schema (what RowValidator builds with pandera.polars)."""
    import pandera.pandas as ppa

    from foundation.specs.rules import (
        AcceptedValuesRule,
        BetweenRule,
        ExpressionRule,
        MaxRule,
        MinRule,
        NotNullRule,
        RegexRule,
    )

    spec: dict[str, dict[str, Any]] = {}
    frame_checks = []
    for check in checks:
        rule = check.rule
        if check.column is not None:
            column = spec.setdefault(check.column, {"checks": [], "nullable": True})
            match rule:
                case NotNullRule():
                    column["nullable"] = False
                case BetweenRule(between=(low, high)):
                    column["checks"].append(ppa.Check.in_range(low, high, name=check.name))
                case MinRule(min=low):
                    column["checks"].append(ppa.Check.ge(low, name=check.name))
                case MaxRule(max=high):
                    column["checks"].append(ppa.Check.le(high, name=check.name))
                case AcceptedValuesRule(accepted_values=values):
                    column["checks"].append(ppa.Check.isin(values, name=check.name))
                case RegexRule(regex=pattern):
                    column["checks"].append(ppa.Check.str_matches(pattern, name=check.name))
        elif isinstance(rule, ExpressionRule):
            # pandas' eval reads this SQL condition as is; a null operand passes, like the polars version.
            expression = rule.expression
            used = [c for c in columns if re.search(rf"\b{re.escape(c)}\b", expression)]

            def holds(df: Any, expression: str = expression, used: list[str] = used) -> Any:
                return df.eval(expression) | df[used].isna().any(axis=1)

            frame_checks.append(ppa.Check(holds, name=check.name))
    return ppa.DataFrameSchema(
        {name: ppa.Column(None, checks=c["checks"], nullable=c["nullable"]) for name, c in spec.items()},
        checks=frame_checks,
        strict=False,
        coerce=False,
    )


def anchor_child(ws_dir: str, slice_rows: int, repeat: int, batch_rows: int) -> dict[str, Any]:
    """Runs in a child interpreter (the code snapshot first on sys.path); prints its results as JSON."""
    from datetime import UTC, datetime

    import duckdb
    import pandera.pandas as ppa
    import pandera.polars as ppl
    import polars as pl
    import pyarrow as pa
    import pyarrow.compute as pc

    from foundation.core.workspace import Workspace
    from foundation.engine.connectors.files import reader_sql, resolve_files
    from foundation.engine.connectors.landing_sql import (
        LINEAGE_COLUMNS,
        LoadContext,
        compile_landing_sql,
        declared_raw_text_columns,
        plan_columns,
    )
    from foundation.engine.quality.checks import declared_checks
    from foundation.engine.quality.gate import evaluate_table_outcomes
    from foundation.engine.quality.row_rules import RowValidator
    from foundation.engine.sql import quote_ident

    workspace = Workspace.open(Path(ws_dir))
    (source,) = workspace.sources()
    spec = source.spec
    checks = declared_checks(spec)
    row_checks = [c for c in checks if c.stage == "row"]
    out: dict[str, Any] = {"row_rules": [c.name for c in row_checks]}

    # The slice, typed by foundation's own landing SQL: exactly the batches the gate screens.
    con = duckdb.connect()
    files = [f.path for f in resolve_files(workspace.root, spec.extract)]
    relation = reader_sql(spec.extract, files, declared_raw_text_columns(spec))
    raw_schema = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    plans = plan_columns(spec, raw_schema)
    landing = compile_landing_sql(spec, plans, relation, LoadContext("bench", datetime.now(UTC)))
    names = [p.name for p in plans] + list(LINEAGE_COLUMNS)
    started = time.perf_counter()
    table = con.sql(
        f"SELECT {', '.join(quote_ident(n) for n in names)} FROM ({landing}) WHERE _status = 'ok' LIMIT {slice_rows}"
    ).to_arrow_table()
    table = table.combine_chunks()
    out["slice_rows"] = table.num_rows
    out["slice_load_seconds"] = time.perf_counter() - started
    con.close()

    # The dirty copy: every DIRTY_EVERY-th row gets engine_temp_c = 999.9 (fails engine_temp_c__between).
    dirty_mask = pa.array([i % DIRTY_EVERY == 0 for i in range(table.num_rows)])
    index = table.schema.get_field_index("engine_temp_c")
    dirty = table.set_column(
        index, "engine_temp_c", pc.if_else(dirty_mask, pa.scalar(999.9), table.column("engine_temp_c").combine_chunks())
    ).combine_chunks()

    validator = RowValidator(checks, table.schema, workspace.root)
    conditions = {c.name: sql_condition(c) for c in row_checks}
    count_sql = (
        "SELECT count(*) AS n, "
        + ", ".join(f"count(*) FILTER (WHERE NOT ({cond})) AS {quote_ident(n)}" for n, cond in conditions.items())
        + " FROM t"
    )
    failed_list = (
        "list_filter(["
        + ", ".join(f"CASE WHEN NOT ({cond}) THEN '{n}' END" for n, cond in conditions.items())
        + "], lambda x: x IS NOT NULL)"
    )
    rows_sql = (
        f"SELECT * FROM (SELECT row_number() OVER () - 1 AS row_index, {failed_list} AS failed FROM t) "
        "WHERE len(failed) > 0"
    )
    out["duckdb_sql"] = count_sql
    pd_schema = pandas_schema(row_checks, table.schema.names)
    variants: dict[str, Any] = {}
    for label, data in (("clean", table), ("1% failing", dirty)):
        batches = data.to_batches(max_chunksize=batch_rows)
        timings: dict[str, list[float]] = {}
        found: dict[str, int] = {}

        def timed(key: str, fn: Any, timings: dict[str, list[float]] = timings) -> Any:
            t0 = time.perf_counter()
            value = fn()
            timings.setdefault(key, []).append(time.perf_counter() - t0)
            return value

        for _ in range(repeat):
            verdicts = timed("rowvalidator", lambda batches=batches: [validator.validate(b) for b in batches])
            found["rowvalidator"] = sum(sum(v.failing.values()) for v in verdicts)

            def bare_polars(batches: list[Any] = batches) -> int:
                failures = 0
                for b in batches:
                    try:
                        validator.schema.validate(pl.from_arrow(b), lazy=True)
                    except ppl.errors.SchemaErrors as exc:
                        failures += exc.failure_cases.height
                return failures

            found["pandera_polars"] = timed("pandera_polars", bare_polars)
            frames = timed("to_pandas", lambda batches=batches: [b.to_pandas() for b in batches])

            def pandas_validate(frames: list[Any] = frames) -> int:
                failures = 0
                for frame in frames:
                    try:
                        pd_schema.validate(frame, lazy=True)
                    except ppa.errors.SchemaErrors as exc:
                        failures += len(exc.failure_cases)
                return failures

            found["pandera_pandas"] = timed("pandera_pandas", pandas_validate)
            del frames

            def duck_once(data: Any = data) -> int:
                con = duckdb.connect()
                con.register("t", data)
                row = con.execute(count_sql).fetchall()[0]
                con.close()
                return sum(row[1:])

            found["duckdb_one_query"] = timed("duckdb_one_query", duck_once)

            def duck_batches(batches: list[Any] = batches) -> int:
                con = duckdb.connect()
                total = 0
                for b in batches:
                    con.register("t", pa.Table.from_batches([b]))
                    total += sum(con.execute(count_sql).fetchall()[0][1:])
                    con.unregister("t")
                con.close()
                return total

            found["duckdb_per_batch"] = timed("duckdb_per_batch", duck_batches)

            def duck_rows(batches: list[Any] = batches) -> int:
                con = duckdb.connect()
                total = 0
                for b in batches:
                    con.register("t", pa.Table.from_batches([b]))
                    total += sum(len(r[1]) for r in con.execute(rows_sql).fetchall())
                    con.unregister("t")
                con.close()
                return total

            found["duckdb_rows_per_batch"] = timed("duckdb_rows_per_batch", duck_rows)
        variants[label] = {
            "batches": len(batches),
            "seconds": {k: _best(v) for k, v in timings.items()},
            "all_seconds": timings,
            "failures_found": found,
        }
    out["variants"] = variants

    # The table rule alone, on the Delta table (b) landed: the SQL the gate runs after the commit.
    table_checks = [c for c in checks if c.stage == "table"]
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        outcomes = evaluate_table_outcomes(workspace, source, table_checks, datetime.now(UTC), None)
        seconds.append(time.perf_counter() - t0)
    out["table_rules"] = {
        "checks": [o.check for o in outcomes],
        "seconds": _best(seconds),
        "observed": [o.observed for o in outcomes],
    }
    return out


def run_anchor(helpers: Any, ws: Path, slice_rows: int, repeat: int, code_path: str) -> dict[str, Any]:
    cmd = [
        PYTHON,
        str(Path(__file__).resolve()),
        "--anchor-child",
        str(ws),
        "--slice",
        str(slice_rows),
        "--repeat",
        str(repeat),
    ]
    helpers.wait_for_quiet()
    proc = subprocess.run(cmd, env=helpers.child_env(code_path), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"anchor child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------------------------------- report


@dataclass
class Run:
    seconds: float
    load_seconds: float
    peak_rss_mib: float
    rows_landed: int
    rows_quarantined: int
    checks: dict[str, int]
    other_cpu_cores: float | None


@dataclass
class Result:
    rows: int
    csv_mib: float
    plain: list[Run] = field(default_factory=list)
    rules: list[Run] = field(default_factory=list)
    no_table_rule: list[Run] = field(default_factory=list)
    anchor: dict[str, Any] = field(default_factory=dict)


def _run(measurement: Any, report: dict) -> Run:
    statuses: dict[str, int] = {}
    for check in report.get("checks", []):
        statuses[check["status"]] = statuses.get(check["status"], 0) + 1
    return Run(
        seconds=measurement.seconds,
        load_seconds=report["seconds"],
        peak_rss_mib=measurement.peak_rss_bytes / MIB,
        rows_landed=report["rows_landed"],
        rows_quarantined=report["rows_quarantined"],
        checks=statuses,
        other_cpu_cores=measurement.other_cpu_cores,
    )


def verdict(ok: bool) -> str:
    return "target met" if ok else "target missed"


def _median(values: list[float]) -> float:
    return statistics.median(values)


def render(result: Result, header: str) -> str:
    a, b, b1 = result.plain, result.rules, result.no_table_rule
    wall = {k: _median([r.seconds for r in runs]) for k, runs in (("a", a), ("b", b), ("b1", b1))}
    load = {k: _median([r.load_seconds for r in runs]) for k, runs in (("a", a), ("b", b), ("b1", b1))}
    rss = {k: max(r.peak_rss_mib for r in runs) for k, runs in (("a", a), ("b", b), ("b1", b1))}
    n = result.rows
    noise = [r.other_cpu_cores for r in a + b + b1 if r.other_cpu_cores is not None]

    def checks(runs: list[Run]) -> str:
        return ", ".join(f"{v} {k}" for k, v in sorted(runs[0].checks.items()))

    def row(label: str, values: dict[str, float], fmt: str, target: float) -> str:
        ratio, ratio1 = values["b"] / values["a"], values["b1"] / values["a"]
        return (
            f"| {label} | {values['a']:{fmt}} | {values['b1']:{fmt}} | {values['b']:{fmt}} | {ratio1:.2f} "
            f"| **{ratio:.2f}** | <= {target:.2f} | {verdict(ratio <= target)} |"
        )

    lines = [
        header,
        f"{len(a)} run(s) of each, in alternating order: seconds = median, peak RSS = max over runs; "
        f"background CPU during the runs: at most {max(noise, default=0):.2f} cores.",
        "",
        f"### Ingest of {n:,} rows ({result.csv_mib:,.0f} MiB CSV): no rules (a) vs ten rules (b)",
        "",
        "| measurement | (a) no rules | (b') rules without the table rule | (b) ten rules | b'/a | b/a | target "
        "| verdict (b/a) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        row("`foundation ingest --json`, whole CLI (s)", wall, ".2f", TIME_TARGET),
        row("the load alone: report `seconds`, no Dagster start-up (s)", load, ".2f", TIME_TARGET),
        row("peak RSS of the process tree (MiB)", rss, ",.0f", RSS_TARGET),
        f"| rows landed / quarantined | {a[0].rows_landed:,} / {a[0].rows_quarantined:,} "
        f"| {b1[0].rows_landed:,} / {b1[0].rows_quarantined:,} | {b[0].rows_landed:,} / {b[0].rows_quarantined:,} "
        "| | | | |",
        f"| check results | {checks(a)} | {checks(b1)} | {checks(b)} | | | | |",
    ]
    anchor = result.anchor
    if anchor:
        m = anchor["slice_rows"]
        table_rule = anchor["table_rules"]
        clean = anchor["variants"]["clean"]["seconds"]
        row_rules_at_n = clean["rowvalidator"] * n / m
        lines += [
            "",
            f"### Where (b) - (a) goes: {load['b'] - load['a']:.2f} s of load time, "
            f"{rss['b'] - rss['a']:,.0f} MiB of peak RSS",
            "",
            "| part | load seconds | peak RSS MiB |",
            "|---|---:|---:|",
            f"| rules in flight and before the commit (9 rules): (b') - (a) | {load['b1'] - load['a']:.2f} "
            f"| {rss['b1'] - rss['a']:,.0f} |",
            f"| the table rule after the commit: (b) - (b') | {load['b'] - load['b1']:.2f} "
            f"| {rss['b'] - rss['b1']:,.0f} |",
            f"| for comparison: `RowValidator.validate` on every batch, in memory ({m:,}-row slice, scaled to "
            f"{n:,} rows) | {row_rules_at_n:.2f} | |",
            f"| for comparison: `{', '.join(table_rule['checks'])}` alone, its SQL on (b)'s Delta table "
            f"({'; '.join(table_rule['observed'])}) | {table_rule['seconds']:.2f} | |",
            "",
            f"### Row rules in memory: pandera vs one DuckDB query ({m:,} typed rows as Arrow, "
            f"{anchor['variants']['clean']['batches']} batches; best of the repeats)",
            "",
            f'Rules: {", ".join(anchor["row_rules"])}. "1% failing": every {DIRTY_EVERY}th row has '
            "engine_temp_c = 999.9.",
            "",
            "| engine | clean s | vs anchor | 1% failing s | vs anchor | failures found (clean / 1%) |",
            "|---|---:|---:|---:|---:|---|",
        ]
        labels = [
            ("duckdb_one_query", "**anchor**: DuckDB, one `count(*) FILTER (WHERE NOT …)` query over the slice"),
            ("duckdb_per_batch", "DuckDB, the same query on each batch"),
            ("duckdb_rows_per_batch", "DuckDB, failing rows + rule names, on each batch"),
            ("rowvalidator", "pandera polars: `RowValidator.validate` per batch (what the gate ran before SQL)"),
            ("pandera_polars", "pandera polars: bare `schema.validate(lazy=True)` per batch"),
            ("to_pandas", "Arrow -> pandas conversion (`RecordBatch.to_pandas`)"),
            ("pandera_pandas", "pandera pandas: `schema.validate(lazy=True)` per batch (after conversion)"),
        ]
        dirty = anchor["variants"]["1% failing"]
        base_c, base_d = clean["duckdb_one_query"], dirty["seconds"]["duckdb_one_query"]
        for key, label in labels:
            c, d = clean[key], dirty["seconds"][key]
            fc = anchor["variants"]["clean"]["failures_found"].get(key, "")
            fd = dirty["failures_found"].get(key, "")
            found = f"{fc:,} / {fd:,}" if isinstance(fc, int) and isinstance(fd, int) else ""
            lines.append(f"| {label} | {c:.3f} | {c / base_c:.1f}x | {d:.3f} | {d / base_d:.1f}x | {found} |")
        pandas_total_c = clean["to_pandas"] + clean["pandera_pandas"]
        pandas_total_d = dirty["seconds"]["to_pandas"] + dirty["seconds"]["pandera_pandas"]
        lines.append(
            f"| pandera pandas incl. conversion | {pandas_total_c:.3f} | {pandas_total_c / base_c:.1f}x "
            f"| {pandas_total_d:.3f} | {pandas_total_d / base_d:.1f}x | |"
        )
        lines += [
            "",
            "pandera backends (bare validate, per batch, same rules): pandas / polars = "
            f"{clean['pandera_pandas'] / clean['pandera_polars']:.1f}x clean, "
            f"{dirty['seconds']['pandera_pandas'] / dirty['seconds']['pandera_polars']:.1f}x with 1% failing "
            f"({(clean['pandera_pandas'] + clean['to_pandas']) / clean['pandera_polars']:.1f}x / "
            f"{pandas_total_d / dirty['seconds']['pandera_polars']:.1f}x counting the conversion).",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of the CSV (default 5,000,000)")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / ".out", help="git-ignored work folder")
    parser.add_argument("--repeat", type=int, default=1, help="runs of (a) and (b) each (the table shows medians)")
    parser.add_argument(
        "--slice", type=int, default=SLICE_ROWS, help=f"rows of the in-memory anchor at most (default {SLICE_ROWS:,})"
    )
    parser.add_argument(
        "--anchor-repeat", type=int, default=3, help="repeats of each in-memory timing (best kept; default 3)"
    )
    parser.add_argument("--wait-quiet", type=float, default=120.0, help="wait up to this long for an idle machine")
    parser.add_argument("--retries", type=int, default=3, help="re-measure a run disturbed by other programs")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces and Delta tables written")
    parser.add_argument("--no-snapshot", action="store_true", help="run the live working tree, not a code copy")
    parser.add_argument("--anchor-child", metavar="WS", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.anchor_child:
        print(json.dumps(anchor_child(args.anchor_child, args.slice, max(1, args.repeat), 122_880)))
        return 0
    helpers = ingest_helpers()
    helpers.QUIET["max_wait"] = max(0.0, args.wait_quiet)
    helpers.RETRIES["max"] = max(0, args.retries)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    workdir = args.workdir.resolve()
    own = workdir / "quality"
    code_path, digest = "", "none"
    text = ""
    try:
        if not args.no_snapshot:
            path, digest = helpers.snapshot_code(own)
            code_path = str(path)
            helpers.CODE["path"] = code_path  # the same snapshot for the CLI runs (bench/ingest.run_foundation)
        csv_path = helpers.telemetry_csv(workdir, args.rows)  # shared with bench/ingest.py's cache
        runs = own / "runs" / str(args.rows)
        plain = make_workspace(runs / "plain", csv_path, rules=False)
        ruled = make_workspace(runs / "rules", csv_path, rules=True)
        no_table = make_workspace(runs / "rules_without_table_rule", csv_path, rules=True, table_rule=False)
        result = Result(rows=args.rows, csv_mib=csv_path.stat().st_size / MIB)
        for i in range(max(1, args.repeat)):
            order = [(plain, result.plain), (no_table, result.no_table_rule), (ruled, result.rules)]
            for ws, into in order if i % 2 == 0 else order[::-1]:
                measured, report = helpers.least_disturbed(
                    lambda ws=ws: helpers.run_foundation(ws), lambda pair: pair[0]
                )
                into.append(_run(measured, report))
                print(
                    f"  run {i + 1}: {ws.name}: {measured.seconds:.2f} s (load {report['seconds']:.2f} s), "
                    f"{measured.peak_rss_bytes / MIB:,.0f} MiB, landed {report['rows_landed']:,}",
                    file=sys.stderr,
                    flush=True,
                )
        print("  in-memory anchor (pandera vs DuckDB)...", file=sys.stderr, flush=True)
        result.anchor = run_anchor(helpers, ruled, min(args.rows, args.slice), max(1, args.anchor_repeat), code_path)
        header = (
            f"Code: {helpers.code_version()}, snapshot {digest}; machine: {os.cpu_count()} cores, "
            f"{helpers._total_memory_gib():.0f} GiB RAM; load average before the run: {load_before}."
        )
        text = render(result, header)
        record = workdir / f"quality-results-{time.strftime('%Y%m%dT%H%M%S')}.json"
        record.write_text(json.dumps(asdict(result), indent=2, default=str))
        print(f"(raw measurements: {record})", file=sys.stderr)
    except Exception as exc:  # a benchmark reports; it does not fail the caller
        print(f"benchmark could not complete: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(own / "runs", ignore_errors=True)
            shutil.rmtree(own / "code", ignore_errors=True)
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
