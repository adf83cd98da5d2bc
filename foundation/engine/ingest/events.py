"""Who wants to hear about loads as they happen (the CLI's progress bar); nobody by default.

Dagster runs the ingestion assets in process for `foundation ingest`, so a module-level listener is the
simplest way for the CLI to see rows flow and reports arrive without threading it through Dagster.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from foundation.engine.ingest.report import LoadReport


class LoadListener(Protocol):
    def on_start(self, source: str) -> None: ...
    def on_rows(self, source: str, rows_read: int) -> None: ...
    def on_done(self, report: LoadReport) -> None: ...
    def on_error(self, source: str, error: BaseException) -> None: ...


_listeners: list[LoadListener] = []


@contextmanager
def listening(listener: LoadListener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def start(source: str) -> None:
    for listener in _listeners:
        listener.on_start(source)


def rows(source: str, rows_read: int) -> None:
    for listener in _listeners:
        listener.on_rows(source, rows_read)


def done(report: LoadReport) -> None:
    for listener in _listeners:
        listener.on_done(report)


def error(source: str, exc: BaseException) -> None:
    for listener in _listeners:
        listener.on_error(source, exc)
