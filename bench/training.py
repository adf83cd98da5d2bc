"""Benchmark: training + evaluating the fleet model's four candidates and the 'as is' baseline, at two demo sizes.

Run from the repository root::

    .venv/bin/python bench/training.py                         # 40 trucks x 60 days and 200 trucks x 180 days
    .venv/bin/python bench/training.py --sizes 40x60,100x365   # other fleet sizes (trucks x days)

For each size it runs `foundation demo --trucks N --days D` once in a copy of this workspace (cached under
--workdir: foundation.yaml, usecases/ and dbt_project/, without generated files), reads the published feature table
`features_truck_day` (training rows: `row_filter`), then times, in this process, what the `candidates` asset does
(`mlops.training.train_and_evaluate`): the time split and its leak check, the baseline rule evaluated by DuckDB, and
per candidate the threshold calibration fit, the fit on the training rows and the scoring of the validation rows.
The time per candidate is the candidate's own `fit_seconds` (calibration + fit + validation scoring); "other" is the
rest (split, leak check, baseline, input preparation). MLflow logging and registration are not included (see the
training report's `seconds.mlflow`). Best of --repeat runs (the total's best run; its split per candidate).

A benchmark reports, it does not fail: exit code 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workspace import REPO, demo_workspace

USECASE = "fleet_maintenance"
MODEL = "failure_risk"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        trucks, days = part.lower().split("x")
        sizes.append((int(trucks), int(days)))
    return sizes


def measure(root: Path, repeat: int) -> dict[str, object]:
    from foundation.core.workspace import Workspace, load_model_specs
    from mlops.dataset import read_feature_table
    from mlops.metrics import evaluate
    from mlops.training import baseline_predictions, train_and_evaluate

    workspace = Workspace.open(root)
    ref = next(r for r in load_model_specs(root).models if r.usecase == USECASE and r.spec.name == MODEL)
    read_started = time.perf_counter()
    frame, _ = read_feature_table(workspace, USECASE, ref.spec, training=True)
    read_seconds = time.perf_counter() - read_started
    best = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = train_and_evaluate(frame, ref.spec)
        total = time.perf_counter() - started
        if best is None or total < best["total"]:
            best = {"total": total, "result": result}
    assert best is not None
    result = best["result"]
    validation = frame.reset_index(drop=True)[result.split.validation].reset_index(drop=True)
    baseline_started = time.perf_counter()
    evaluate(result.validation_actual, baseline_predictions(validation, ref.spec.baseline.rule), ref.spec.selection)
    baseline_seconds = time.perf_counter() - baseline_started
    return {
        "rows": len(frame),
        "train_rows": int(result.split.train.sum()),
        "validation_rows": int(result.split.validation.sum()),
        "features": len(result.features),
        "read": read_seconds,
        "baseline": baseline_seconds,
        "candidates": {c.name: c.fit_seconds for c in result.candidates},
        "total": best["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="40x60,200x180", help="fleet sizes, trucks x days, comma-separated")
    parser.add_argument(
        "--workdir", default=str(REPO / "bench" / ".out" / "ml"), help="where the demo workspaces are cached"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per size (the best total is kept)")
    parser.add_argument("--fresh", action="store_true", help="re-run the demo even when a cached workspace exists")
    args = parser.parse_args()
    rows = []
    for trucks, days in parse_sizes(args.sizes):
        print(f"preparing {trucks} trucks x {days} days (foundation demo, cached)...", file=sys.stderr, flush=True)
        root = demo_workspace(Path(args.workdir), trucks, days, fresh=args.fresh)
        rows.append(((trucks, days), measure(root, args.repeat)))
    names = list(rows[0][1]["candidates"])
    print(f"\nTraining + evaluation of {USECASE}/{MODEL} ({os.cpu_count()} CPUs), best of {args.repeat}:\n")
    header = ["fleet", "training rows (train / validation)", "features", "'as is'", *names, "other", "total"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for (trucks, days), m in rows:
        candidates = m["candidates"]
        other = m["total"] - sum(candidates.values())
        cells = [
            f"{trucks} trucks x {days} d",
            f"{m['rows']:,} ({m['train_rows']:,} / {m['validation_rows']:,})",
            str(m["features"]),
            f"{m['baseline']:.2f} s",
            *(f"{candidates[n]:.2f} s" for n in names),
            f"{other:.2f} s",
            f"{m['total']:.2f} s",
        ]
        print("| " + " | ".join(cells) + " |")
    if len(rows) > 1:
        (_, small), (_, large) = rows[0], rows[-1]
        rows_ratio, time_ratio = large["rows"] / small["rows"], large["total"] / small["total"]
        print(f"\nScaling: {rows_ratio:.1f}x the rows -> {time_ratio:.1f}x the time.")


if __name__ == "__main__":
    main()
