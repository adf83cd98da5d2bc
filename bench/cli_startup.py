"""Benchmark: how long `foundation` takes to start and answer, per command (issue 18, item 5; issue 15).

Run from the repository root, after `foundation demo` (or `make demo`) so the workspace holds data and a model::

    .venv/bin/python bench/cli_startup.py                 # the repository's own workspace, 5 runs each
    .venv/bin/python bench/cli_startup.py --repeat 9 --workspace DIR

Each command runs in a fresh process (`foundation ...`, output discarded); the median wall time is reported beside
the anchor measured in the same run, a bare `python -c pass`, and the modules each command imported that take
seconds (dagster, dbt, mlflow, sklearn, pandas), with the CPU seconds (user + system) beside the wall time.
Targets (issue 18): `check` <= 1.5 s, `models list` <= 2 s on a
quiet machine; `--help` and `sources list` must not get slower (issue 15). A benchmark reports, it does not fail:
exit code 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = [["--help"], ["sources", "list"], ["check"], ["models", "list"], ["kpi", "list"]]
TARGETS_S = {"check": 1.5, "models list": 2.0}
HEAVY = ("dagster", "dbt", "mlflow", "sklearn", "pandas", "duckdb", "pyarrow")

# The CLI in this interpreter; the heavy packages it imported, on stderr (stdout is the command's).
PROBE = """
import json, sys
sys.argv = ["foundation", *sys.argv[1:]]
from foundation.cli.main import app
try:
    app()
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})) + "\\n")
"""


def _median_s(command: list[str], repeat: int, cwd: Path) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + system) of `command`, each run in a fresh process.

    CPU seconds are what a loaded machine does not inflate: 2 cores shared by many processes stretch the wall time."""
    times, cpu = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times), statistics.median(cpu)


def _heavy_imports(args: list[str], cwd: Path) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, check=False)
    modules = json.loads(result.stderr.rpartition("\nMODULES ")[2] or "[]")
    return [m for m in HEAVY if m in modules]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="Runs per command (the median is reported).")
    parser.add_argument("--workspace", type=Path, default=REPO, help="Workspace to run in (default: the repo).")
    options = parser.parse_args()
    cwd = options.workspace.resolve()
    foundation = str(Path(sys.executable).parent / "foundation")
    os.environ.pop("FOUNDATION_WORKSPACE", None)
    anchor, anchor_cpu = _median_s([sys.executable, "-c", "pass"], options.repeat, cwd)
    load = os.getloadavg()[0]
    print(
        f"CLI start-up in {cwd} ({options.repeat} runs each, median; load average {load:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"anchor `python -c pass`: {anchor:.3f} s wall, {anchor_cpu:.3f} s CPU\n")
    print("| command | seconds | CPU seconds | x anchor | target | heavy modules imported |")
    print("|---|---|---|---|---|---|")
    for args in COMMANDS:
        name = " ".join(args)
        seconds, cpu = _median_s([foundation, *args], options.repeat, cwd)
        target = TARGETS_S.get(name)
        verdict = "" if target is None else f"<= {target} s: {'met' if seconds <= target else 'missed'}"
        heavy = ", ".join(_heavy_imports(args, cwd)) or "-"
        print(f"| foundation {name} | {seconds:.2f} | {cpu:.2f} | {seconds / anchor:.0f} | {verdict} | {heavy} |")


if __name__ == "__main__":
    main()
