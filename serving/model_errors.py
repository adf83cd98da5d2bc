"""Errors a model raises while scoring: the first of each kind logged with its traceback, the repeats counted.

A client that keeps sending what makes a model raise used to cost ~18 KB of traceback in the log per request.
Here an error's kind is (model, version, exception type, the line that raised it): its first occurrence is
logged with the traceback, the repeats only increment `foundation_api_model_errors_total{model, version, error}`
and are summed up in one warning line at most every `summary_every_s` seconds. The client gets a 500 that names
no internals (serving.scoring).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("serving.model_errors")

MAX_KINDS = 1000  # kinds remembered at most (a model raising from ever new lines must not grow memory)


def error_kind(exc: BaseException) -> tuple[str, str]:
    """Pure: (the exception's type name, `file:line` where it was raised) - what makes two errors the same."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    return type(exc).__name__, where


@dataclass
class _Seen:
    repeats: int  # since the last line logged
    logged_at: float


class ModelErrors:
    """Reports model errors; thread-safe (reported from the event loop and from worker threads)."""

    def __init__(
        self, counter: Any, summary_every_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.counter = counter  # a prometheus Counter labelled (model, version, error)
        self.summary_every_s = summary_every_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str, str], _Seen] = {}
        self._lock = threading.Lock()

    def report(self, model: str, version: int, exc: BaseException, request_id: str | None) -> None:
        name, where = error_kind(exc)
        self.counter.labels(model, str(version), name).inc()
        key = (model, version, name, where)
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                if len(self._seen) >= MAX_KINDS:
                    self._seen.pop(next(iter(self._seen)))
                self._seen[key] = _Seen(0, now)
                first, repeats, since = True, 0, 0.0
            else:
                seen.repeats += 1
                if now - seen.logged_at < self.summary_every_s:
                    return
                first, repeats, since = False, seen.repeats, now - seen.logged_at
                seen.repeats, seen.logged_at = 0, now
        if first:
            log.error(
                "model %s v%s failed to score request %s: %s at %s (its repeats are counted in "
                "foundation_api_model_errors_total and summed up here every %.0f s)",
                model,
                version,
                request_id,
                name,
                where,
                self.summary_every_s,
                exc_info=exc,
            )
        else:
            log.warning(
                "model %s v%s: %s at %s again %d time(s) in the last %.0f s (latest: request %s; traceback at its "
                "first occurrence)",
                model,
                version,
                name,
                where,
                repeats,
                since,
                request_id,
            )
