"""What libraries print while we run them (dbt's event stream, MLflow's notices and INFO lines) goes to a log file.

The console is ours: tables for people, `--json` for machines. MLflow writes to it three ways, all caught here:
`print` on stdout, `eprint` on stderr ("Registered model ... already exists"), and its `mlflow` loggers ("Detected uv
project"). `foundation` starts with MLFLOW_CONFIGURE_LOGGING=false, so those loggers have no console handler of
their own; here they get the log file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

LOGGED_LIBRARIES = ("mlflow",)  # loggers whose INFO lines belong in the log, not on the console


@contextlib.contextmanager
def library_output_to(path: Path) -> Iterator[None]:
    """Send stdout, stderr and the INFO lines of `LOGGED_LIBRARIES` to `path` (appended) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        saved = []
        for name in LOGGED_LIBRARIES:
            logger = logging.getLogger(name)
            saved.append((logger, logger.level, logger.propagate))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        try:
            yield
        finally:
            for logger, level, propagate in saved:
                logger.removeHandler(handler)
                logger.setLevel(level)
                logger.propagate = propagate
