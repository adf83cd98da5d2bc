"""docs/tutorial.md, followed to the letter on a temporary folder with a CSV of its own, to a prediction over HTTP.

The commands and files come from the page itself (fenced blocks tagged `bash tutorial`, `file=PATH`,
`bash tutorial-serve`, `bash tutorial-http`), so the tutorial cannot drift from what works.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
FENCE_RE = re.compile(r"^```(\w+)[ \t]*([^\n]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
DOC_PORT = "8000"


@dataclass(frozen=True)
class Step:
    kind: str  # run | file | serve | http
    text: str
    path: str = ""


def tutorial_steps(markdown: str) -> list[Step]:
    """The tagged blocks of the page, in order."""
    steps = []
    for _language, info, body in FENCE_RE.findall(markdown):
        tags = info.split()
        if "tutorial" in tags:
            steps.append(Step("run", body))
        elif "tutorial-serve" in tags:
            steps.append(Step("serve", body.strip()))
        elif "tutorial-http" in tags:
            steps.append(Step("http", body.strip()))
        elif any(t.startswith("file=") for t in tags):
            path = next(t for t in tags if t.startswith("file="))[len("file=") :]
            steps.append(Step("file", body, path))
    return steps


def write_churn_csv(folder: Path) -> Path:
    """This test's own data (not the demo's): 80 customers x 12 months; churn follows tickets, tenure and fee."""
    rng = random.Random(5)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "customers_2025.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "Customer ID",
                "Snapshot Date",
                "Plan",
                "Monthly Fee",
                "Support Tickets",
                "Tenure Months",
                "Churned Next Month",
            ]
        )
        for customer in range(1, 81):
            plan = rng.choice(["basic", "standard", "premium"])
            fee = {"basic": 19.0, "standard": 29.0, "premium": 49.0}[plan]
            tenure = rng.randint(1, 60)
            for month in range(1, 13):
                tickets = max(0, int(rng.gauss(1.5, 1.8)))
                z = -3.2 + 0.9 * tickets - 0.05 * tenure + 0.03 * (fee - 29)
                churned = rng.random() < 1 / (1 + math.exp(-z))
                writer.writerow(
                    [
                        f"C{customer:04d}",
                        date(2025, month, 1).isoformat(),
                        plan,
                        fee,
                        tickets,
                        tenure + month,
                        int(churned),
                    ]
                )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, f"foundation serve exited: {process.stdout.read() if process.stdout else ''}"
        try:
            with urllib.request.urlopen(f"{base}/health/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, "the API was not ready within 120 s"
        time.sleep(0.3)


def test_the_tutorial_page_has_every_kind_of_step() -> None:
    kinds = [s.kind for s in tutorial_steps(TUTORIAL.read_text(encoding="utf-8"))]
    assert kinds.count("run") >= 4 and kinds.count("file") >= 5
    assert kinds[-2:] == ["serve", "http"]


def test_the_tutorial_end_to_end(tmp_path: Path) -> None:
    steps = tutorial_steps(TUTORIAL.read_text(encoding="utf-8"))
    port = str(_free_port())
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUNDATION_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    cwd = tmp_path
    cwd_file = tmp_path / ".tutorial_cwd"
    outputs: list[str] = []
    server: subprocess.Popen[str] | None = None
    try:
        for step in steps:
            if step.kind == "run":
                # the reader brings their CSV once the use case exists (section 2 of the page)
                if (cwd / "usecases" / "churn").is_dir() and not (cwd / "landing" / "churn").exists():
                    write_churn_csv(cwd / "landing" / "churn" / "customers")
                script = f"set -euo pipefail\n{step.text}\npwd > {cwd_file}\n"
                result = subprocess.run(
                    ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200
                )
                outputs.append(f"$ {step.text}\n{result.stdout}\n{result.stderr}")
                assert result.returncode == 0, outputs[-1]
                cwd = Path(cwd_file.read_text().strip())
            elif step.kind == "file":
                target = cwd / step.path
                assert target.parent.is_dir(), f"{step.path}: the tutorial writes into a folder that does not exist"
                target.write_text(step.text, encoding="utf-8")
            elif step.kind == "serve":
                assert f"--port {DOC_PORT}" in step.text
                command = step.text.replace(f"--port {DOC_PORT}", f"--port {port}") + " --log-level warning"
                server = subprocess.Popen(
                    ["bash", "-c", f"exec env {command}"],
                    cwd=cwd,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                _wait_ready(f"http://127.0.0.1:{port}", server)
            elif step.kind == "http":
                command = step.text.replace(f"127.0.0.1:{DOC_PORT}", f"127.0.0.1:{port}")
                result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True)
                assert result.returncode == 0, result.stderr
                body = json.loads(result.stdout)
                predictions = body["predictions"]
                assert [p["model"] for p in predictions] == ["churn__prediction"] * 2, body
                assert all(0 <= p["score"] <= 1 for p in predictions)
                # six tickets and two months of tenure on the cheapest plan is riskier than a loyal, quiet customer
                assert predictions[0]["score"] > predictions[1]["score"], body
        assert server is not None, "the tutorial never starts the API"
        log = "\n".join(outputs)
        assert re.search(r"ok: .*2 source\(s\) in 2 use case\(s\), 0 warning\(s\)", log), log[-3000:]
        assert "churn__prediction" in log and "portfolio.png" in log
        # `foundation run churn` prints the comparison, the winner and the gate's verdict, as the page shows
        assert "True Negatives" in log and re.search(r"winner: \w+ -> churn__prediction v1 champion", log), log[-3000:]
        portfolio = cwd / "portfolio" / "portfolio.png"
        assert portfolio.read_bytes().startswith(b"\x89PNG")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
