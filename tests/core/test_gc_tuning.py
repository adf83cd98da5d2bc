"""Collector settings apply in the `foundation` command only: frozen garbage in a test or UI process is never freed."""

import gc
import sys

import pytest

from foundation.core.gc_tuning import GC_THRESHOLDS, freeze_heap_for_exit, quiet_garbage_collector


@pytest.fixture
def collector_restored():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_other_processes_keep_pythons_collector(collector_restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/lib/python3/site-packages/pytest"])
    before = (gc.get_threshold(), gc.get_freeze_count())
    quiet_garbage_collector()
    freeze_heap_for_exit()
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_the_foundation_command_freezes_its_heap_and_collects_less(
    collector_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["/work/.venv/bin/foundation", "run"])
    gc.unfreeze()
    quiet_garbage_collector()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    freeze_heap_for_exit()
    assert gc.get_freeze_count() > 0
