"""Shared by the MLOps benchmarks: a fresh copy of this repository's workspace with the demo run at a given size."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOUNDATION = str(Path(sys.executable).with_name("foundation"))
SKIP = shutil.ignore_patterns("_generated", "target", "logs", ".foundation", "__pycache__", ".user.yml")


def demo_workspace(workdir: Path, trucks: int, days: int, seed: int = 7, fresh: bool = False) -> Path:
    """`<workdir>/<trucks>x<days>`: foundation.yaml, usecases/ and dbt_project/ copied, then `foundation demo`
    (landing files, ingestion, dbt, gold, training). Reused when it already ran, unless `fresh`."""
    root = workdir / f"{trucks}x{days}"
    done = root / ".bench_demo_done"
    if done.exists() and not fresh:
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copy2(REPO / "foundation.yaml", root / "foundation.yaml")
    shutil.copytree(REPO / "usecases", root / "usecases", ignore=SKIP)
    shutil.copytree(REPO / "dbt_project", root / "dbt_project", ignore=SKIP)
    started = time.perf_counter()
    proc = subprocess.run(
        [FOUNDATION, "demo", "--trucks", str(trucks), "--days", str(days), "--seed", str(seed), "--json"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"foundation demo failed in {root}:\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}")
    done.write_text(json.dumps({"seconds": round(time.perf_counter() - started, 1)}))
    return root
