"""Helpers of the crash tests (test_crash_points.py, test_kill_9.py): a file source whose files say what each row
should become, `foundation ingest` in a subprocess, and the assertion that nothing was lost or duplicated."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from deltalake import DeltaTable

from foundation.engine.ingest.crash_points import CRASH_AT_ENV, CRASH_EXIT_CODE
from foundation.engine.ingest.pending_quarantine import PendingQuarantine

FOUNDATION = str(Path(sys.executable).parent / "foundation")
LABEL = re.compile(r"f\d+r\d+")
BATCH_ROWS = 4  # several batches per file, so a crash can fall between two


def csv_file(number: int, rows: int = 12) -> tuple[str, list[str], list[str]]:
    """A CSV whose every row has a unique label; half of them invalid, by turns of type, parse and row rule."""
    lines, valid, invalid = ["id,label"], [], []
    for i in range(rows):
        label, key = f"f{number}r{i}", number * 1000 + i
        kind = i % 6
        if kind == 1:
            lines.append(f"x{key},{label}")  # id does not type: quarantined with _rule = type
        elif kind == 2:
            lines.append(f"{key},{label},extra")  # a ragged line: rejected by the CSV reader, _rule = parse
        elif kind == 3:
            lines.append(f"{key},x{label}")  # breaks the row rule on label: _rule = label__regex
        else:
            lines.append(f"{key},{label}")
        (invalid if kind in (1, 2, 3) else valid).append(label)
    return "\n".join(lines) + "\n", valid, invalid


LOADS = {
    "append": {"mode": "append"},
    "append_cursor": {"mode": "append", "incremental": {"cursor": "id"}},
    "merge_new_files_only": {"mode": "merge", "primary_key": ["id"], "incremental": {"new_files_only": True}},
    "merge": {"mode": "merge", "primary_key": ["id"]},
    "replace": {"mode": "replace"},
}
READS_EVERY_FILE = {"merge", "replace"}  # every run reads every file, and quarantines its bad rows again


class Landing:
    """A file source's workspace and what its files hold."""

    def __init__(self, make_workspace, spec, settings: dict, load: dict) -> None:
        source = spec(
            "items",
            {"type": "csv", "path": "landing/*.csv"},
            load=load,
            columns=[
                {"name": "id", "type": "integer"},
                {"name": "label", "type": "varchar", "checks": [{"regex": "^f"}]},
            ],
        )
        self.kit = make_workspace(sources=[source], settings=settings)
        self.valid: dict[str, list[str]] = {}
        self.invalid: dict[str, list[str]] = {}

    @property
    def files(self) -> list[str]:
        return sorted(self.valid)

    def land(self, files: int = 1, rows: int = 12) -> None:
        for _ in range(files):
            number = len(self.valid) + 1
            name = f"landing/f{number:03d}.csv"
            text, self.valid[name], self.invalid[name] = csv_file(number, rows)
            self.kit.land(name, text)


def ingest(kit, crash_at: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_AT_ENV}
    if crash_at:
        env[CRASH_AT_ENV] = crash_at
    command = [FOUNDATION, "--workspace", str(kit.root), "ingest", "--json"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def crash(kit, point: str) -> None:
    result = ingest(kit, crash_at=point)
    assert result.returncode == CRASH_EXIT_CODE, f"{point} was not reached:\n{result.stdout[-2000:]}{result.stderr}"


def rerun(kit) -> subprocess.CompletedProcess[str]:
    result = ingest(kit)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def committed_loads(kit, name: str) -> list[str]:
    """Load ids of the bronze commits, oldest first."""
    history = DeltaTable(kit.bronze_uri(name)).history()
    return [c["foundation.load_id"] for c in sorted(history, key=lambda c: c["version"]) if "foundation.load_id" in c]


def quarantine_rows(kit, name: str) -> list[dict]:
    uri = Path(kit.quarantine_uri(name))
    return kit.quarantine(name) if (uri / "_delta_log").is_dir() else []


def label_of(row: dict) -> str:
    (label,) = set(LABEL.findall(row["_raw_record"]))
    return label


def by_file(rows: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for path, label in rows:
        grouped.setdefault(Path(path).relative_to(Path(path).parents[1]).as_posix(), []).append(label)
    return {path: sorted(labels) for path, labels in grouped.items()}


def assert_nothing_lost(landing: Landing, reads_every_file: bool = False) -> None:
    """Per file: valid rows in bronze once, invalid rows in the quarantine once; no row of an uncommitted load."""
    kit = landing.kit
    bronze = kit.query('SELECT _source_file, label FROM bronze."uc__items"')
    assert by_file([(r["_source_file"], r["label"]) for r in bronze]) == {
        f: sorted(v) for f, v in landing.valid.items()
    }
    committed = committed_loads(kit, "items")
    quarantined = quarantine_rows(kit, "items")
    assert {q["_load_id"] for q in quarantined} <= set(committed), "quarantine rows of a load that never committed"
    for load_id, n in Counter((q["_load_id"], label_of(q)) for q in quarantined).items():
        assert n == 1, f"{load_id} quarantined twice"
    if reads_every_file:  # each load quarantines what it read: the newest one has every invalid row, once
        quarantined = [q for q in quarantined if q["_load_id"] == committed[-1]]
    assert by_file([(q["_source_file"], label_of(q)) for q in quarantined]) == {
        f: sorted(v) for f, v in landing.invalid.items()
    }
    assert PendingQuarantine(kit.quarantine_uri("items")).load_ids() == []
