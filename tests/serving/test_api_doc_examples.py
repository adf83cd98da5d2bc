"""Every example of docs/api.md runs, in order, against `foundation serve` on the demo's workspace, and answers what
the page shows (issue 16 item 6).

The page's fenced blocks tagged `example` (bash: curl, jq, the client generator; python: httpx and a client
generated from the live OpenAPI document with openapi-python-client) are run as a reader would in one terminal:
one working folder, the shell variables of earlier blocks set, `localhost:8000` pointing at the test's server, the
keys of the page's `server` block. A `json answer` block below an example must match what it printed: the same
keys, the same JSON types, the same text (`…` stands for any text). Every bash and Python block of the page is an
example or the server's start-up, so no example can go stale unseen. The Python blocks and the generator run in
`tools/openapi-client`'s own locked environment (httpx, attrs, python-dateutil: what a generated client needs).
The demo is built afresh (`foundation demo`), unless $FOUNDATION_TEST_BUILT_DEMO names one already built."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.serving.server import Server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "api.md"
TOOLS = REPO / "tools" / "openapi-client"
FENCE_RE = re.compile(r"^```(\w+)[ \t]*([^\n]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
RUNNABLE = ("bash", "sh", "shell", "console", "python", "py")
ANY_TEXT = "…"
BUILT_DEMO_ENV = "FOUNDATION_TEST_BUILT_DEMO"


@dataclass(frozen=True)
class Block:
    language: str
    tags: tuple[str, ...]
    body: str
    answer: str | None = None  # the `json answer` block right below it


def doc_blocks(markdown: str) -> list[Block]:
    """Pure: the page's fenced blocks in order, each `json answer` attached to the block above it."""
    blocks: list[Block] = []
    for language, info, body in FENCE_RE.findall(markdown):
        tags = tuple(info.split())
        if language == "json" and "answer" in tags and blocks:
            last = blocks.pop()
            blocks.append(Block(last.language, last.tags, last.body, body))
        else:
            blocks.append(Block(language, tags, body))
    return blocks


def mismatches(shown: Any, answered: Any, at: str = "") -> list[str]:
    """Pure: where an answer differs from what the page shows (keys, JSON types, text; `…` is any text)."""
    where = at or "the answer"
    if isinstance(shown, dict):
        if not isinstance(answered, dict):
            return [f"{where}: an object on the page, {type(answered).__name__} answered"]
        if set(shown) != set(answered):
            return [f"{where}: keys {sorted(shown)} on the page, {sorted(answered)} answered"]
        return [m for k in shown for m in mismatches(shown[k], answered[k], f"{at}.{k}" if at else k)]
    if isinstance(shown, list):
        if not isinstance(answered, list) or (not shown) != (not answered):
            return [f"{where}: {shown!r} on the page, {answered!r} answered"]
        return [
            m for i, item in enumerate(answered) for m in mismatches(shown[min(i, len(shown) - 1)], item, f"{at}[{i}]")
        ]
    if isinstance(shown, str):
        pattern = ".*".join(re.escape(part) for part in shown.split(ANY_TEXT))
        ok = isinstance(answered, str) and re.fullmatch(pattern, answered, re.DOTALL) is not None
        return [] if ok else [f"{where}: {shown!r} on the page, {answered!r} answered"]
    if isinstance(shown, bool) or shown is None:
        ok = type(answered) is type(shown)
    else:  # a number: its type, not its value (a score depends on the model trained)
        ok = isinstance(answered, int | float) and not isinstance(answered, bool)
    return [] if ok else [f"{where}: {shown!r} on the page, {answered!r} answered"]


def printed_values(stdout: str, language: str) -> list[Any]:
    """The JSON values a bash example printed, one after the other; a Python example's printed lines."""
    if language.startswith("py"):
        return [ast.literal_eval(line) for line in stdout.splitlines() if line.strip()]
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(stdout.rstrip()):
        value, end = decoder.raw_decode(stdout, at)
        values.append(value)
        at = end + len(stdout[end:]) - len(stdout[end:].lstrip())
    return values


def test_the_matcher_finds_what_differs() -> None:
    shown = {"id": ANY_TEXT, "as_of": "2026-…", "found": True, "score": 0.5, "key": {"truck_id": "TRK-0007"}}
    answered = {"id": "8f0c", "as_of": "2026-03-01", "found": False, "score": 1, "key": {"truck_id": "TRK-0007"}}
    assert mismatches(shown, answered) == []
    assert mismatches(shown, {**answered, "extra": 1}) != []
    assert mismatches(shown, {**answered, "as_of": "2025-03-01"}) == [
        "as_of: '2026-…' on the page, '2025-03-01' answered"
    ]
    assert mismatches(shown, {**answered, "key": {"truck_id": "TRK-0008"}}) != []
    assert mismatches(shown, {**answered, "score": "0.5"}) != []
    assert mismatches({"errors": []}, {"errors": [{"field": "x"}]}) != []


def test_every_bash_and_python_block_of_the_page_runs() -> None:
    blocks = doc_blocks(DOC.read_text(encoding="utf-8"))
    runnable = [b for b in blocks if b.language in RUNNABLE]
    assert len([b for b in runnable if "example" in b.tags]) >= 10
    assert [b.body for b in runnable if "example" not in b.tags and "server" not in b.tags] == []
    assert [b for b in blocks if b.language == "json" and "answer" in b.tags] == []  # each one below an example


@pytest.fixture(scope="module")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's workspace (`foundation demo`, its default fleet: on a smaller one no fleet model passes the gate):
    what the page's examples talk about."""
    root = tmp_path_factory.mktemp("api-doc")
    built = os.environ.get(BUILT_DEMO_ENV)
    if built:  # a workspace `foundation demo` already built (a loaded machine takes 15 min or more): used as a copy
        shutil.copytree(built, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("api_predictions", "*.lock"))
        return root
    shutil.copy(REPO / "foundation.yaml", root / "foundation.yaml")
    shutil.copytree(REPO / "usecases", root / "usecases")
    shutil.copytree(REPO / "dbt_project", root / "dbt_project", ignore=shutil.ignore_patterns("_generated", "target"))
    demo = subprocess.run(
        [
            sys.executable,
            "-m",
            "foundation.cli.main",
            "--workspace",
            str(root),
            "demo",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def tools_bin() -> Path:
    """tools/openapi-client's environment, synced from its lock (the generator, httpx, attrs, python-dateutil)."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to sync tools/openapi-client (make test installs it)"
    synced = subprocess.run([uv, "sync", "--frozen", "--project", str(TOOLS)], capture_output=True, text=True)
    assert synced.returncode == 0, synced.stderr[-2000:]
    return TOOLS / ".venv" / "bin"


def server_keys(blocks: list[Block]) -> str:
    server = next(b for b in blocks if "server" in b.tags)
    return re.search(r'FOUNDATION_API_KEYS="([^"]+)"', server.body).group(1)  # type: ignore[union-attr]


def run_example(block: Block, base: str, variables: list[str], folder: Path, tools_bin: Path) -> str:
    text = block.body.replace("localhost:8000", base)
    env = {"PATH": f"{tools_bin}:/usr/bin:/bin", "HOME": str(folder)}
    if block.language.startswith("py"):
        command = [str(tools_bin / "python"), "-c", text]
    else:
        # a 4xx is a failed example unless the block says which status it shows (`status=422`)
        strict = (
            ""
            if any(t.startswith("status=") for t in block.tags)
            else 'curl() { command curl --fail-with-body "$@"; }\n'
        )
        command = ["bash", "-c", "set -euo pipefail\n" + strict + "\n".join(variables) + "\n" + text]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{block.body}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_every_example_answers_what_the_page_shows(demo_workspace: Path, tools_bin: Path, tmp_path: Path) -> None:
    blocks = doc_blocks(DOC.read_text(encoding="utf-8"))
    examples = [b for b in blocks if b.language in RUNNABLE and "example" in b.tags]
    variables: list[str] = []  # the shell variables set by the blocks run so far, as in one terminal
    with Server(demo_workspace, {"FOUNDATION_API_KEYS": server_keys(blocks)}) as server:
        server.wait_ready()
        base = server.base.removeprefix("http://")
        for block in examples:
            stdout = run_example(block, base, variables, tmp_path, tools_bin)
            if block.language == "bash":
                variables += [line for line in block.body.splitlines() if re.match(r"^[A-Z_]+=", line)]
            if block.answer is None:
                continue
            values = printed_values(stdout, block.language)
            assert values, f"{block.body}\nprinted nothing"
            shown = json.loads(block.answer)
            for value in values:
                assert mismatches(shown, value) == [], f"{block.body}\n{mismatches(shown, value)}"
