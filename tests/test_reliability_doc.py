"""docs/reliability.md says every row is a test: each test file it names exists and collects tests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "reliability.md"


def named_test_files() -> list[str]:
    return sorted(set(re.findall(r"`(tests/[\w/]+\.py)`", DOC.read_text())))


def test_every_test_file_the_reliability_report_names_exists_and_has_tests() -> None:
    files = named_test_files()
    assert len(files) >= 15, files
    missing = [name for name in files if not (REPO / name).is_file()]
    assert not missing, f"docs/reliability.md names test files that do not exist: {missing}"
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    counted = {name: 0 for name in files}
    for line in collected.stdout.splitlines():
        name = line.split("::", 1)[0]
        if name in counted and "::" in line:
            counted[name] += 1
    empty = [name for name, count in counted.items() if count == 0]
    assert not empty, f"named in docs/reliability.md but collect no test: {empty}\n{collected.stderr[-2000:]}"
