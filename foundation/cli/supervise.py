"""Long-running child processes (`foundation ui`, `foundation daemon`): started stoppable, stopped with their parent."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def restore_default_signals() -> None:
    """`preexec_fn` of a child: Ctrl+C and SIGTERM at their defaults even where this process inherited them ignored
    (a background job, a test runner). Dagster's processes map SIGTERM to SIGINT's handler, so an inherited ignored
    SIGINT made `dagster dev` and its daemon unstoppable but by SIGKILL."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def supervise(commands: Sequence[Sequence[str]], env: Mapping[str, str], cwd: Path) -> int:
    """Run `commands` side by side until one ends or this process gets Ctrl+C or SIGTERM; then stop the others
    (SIGTERM, then SIGKILL after 30 s). Returns the exit code to report: 0 when stopped on request."""
    processes = [
        subprocess.Popen(list(c), env=dict(env), cwd=cwd, preexec_fn=restore_default_signals) for c in commands
    ]

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)  # a bounded wait: a signal handled on another thread still stops us within 0.5 s
        code = next(p.returncode for p in processes if p.returncode is not None)
    except (KeyboardInterrupt, SystemExit):
        code = 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return code
