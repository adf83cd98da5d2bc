"""dbt's partial-parse file, handed from the `dbt parse` that prepared the project to the `dbt build` that runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

PARTIAL_PARSE_FILE = "partial_parse.msgpack"  # dbt's own name, in its target folder


def reuse_partial_parse(parsed_target: Path, run_target: Path) -> bool:
    """Give `dbt build` the partial-parse file `prepare_project`'s `dbt parse` just wrote; returns whether it copied.

    dbt looks for `partial_parse.msgpack` in its own target folder, and the build's (`target/run`) differs from the
    parse's: without this, a fresh workspace (or a changed project) is parsed in full twice per run (4 s on the
    demo). dbt checks the file against the project, profile and vars itself and parses in full if it does not match.
    """
    source = parsed_target / PARTIAL_PARSE_FILE
    dest = run_target / PARTIAL_PARSE_FILE
    if not source.is_file() or (dest.is_file() and dest.stat().st_mtime >= source.stat().st_mtime):
        return False
    run_target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, dest)
    return True
