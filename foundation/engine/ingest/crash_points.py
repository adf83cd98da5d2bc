"""Named crash points: a TEST HOOK that kills the process at one step of a load, as `kill -9` would there.

With `FOUNDATION_CRASH_AT=<point>` in its environment, a process calls `os._exit` (no `finally`, no flush, no
clean-up) when a load reaches that point. Only tests set it, on the `foundation ingest` subprocesses they start
(tests/engine/ingest/test_crash_points.py), to prove that a crash at any step of a load loses and duplicates no row. It
is
not a setting, and nothing in a deployment should set it.
"""

from __future__ import annotations

import os

CRASH_AT_ENV = "FOUNDATION_CRASH_AT"
CRASH_EXIT_CODE = 77

# In the order a load reaches them (the settle step runs first, and only when a crash left a pending file).
POINTS = (
    "after_settle_quarantine_commit",  # settling a crashed load: its rows appended, its pending file not yet removed
    "after_staging",  # rest_api/sql/html_table: the extract fetched to the staging folder, nothing read yet
    "after_first_batch",  # the Delta writer took the first batch: Parquet parts written, nothing committed
    "before_pending_quarantine",  # the whole stream read and checked; the invalid rows only in memory
    "after_pending_quarantine",  # the invalid rows in the pending file; the bronze commit not made
    "after_bronze_commit",  # data + load state committed; the quarantine table not yet appended
    "after_quarantine_commit",  # the quarantine table appended; the pending file not yet removed
    "after_load",  # everything written; the results history and the report not yet
)


def crash_point(name: str) -> None:
    """Exit at once, with CRASH_EXIT_CODE, if the environment names this point."""
    if name not in POINTS:  # a misspelt point would silently never fire
        raise ValueError(f"unknown crash point {name!r}: one of {', '.join(POINTS)}")
    if os.environ.get(CRASH_AT_ENV) == name:
        os._exit(CRASH_EXIT_CODE)
