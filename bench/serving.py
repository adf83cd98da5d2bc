"""Serving benchmark: our inference API (`foundation serve`) against `mlflow models serve` on the same model, same run.

Model: the champion of the demo's `fleet_maintenance__failure_risk` (a logistic regression in a preprocessing
pipeline, 23 inputs), trained by `foundation demo` (40 trucks x 60 days, cached under --demo-dir, shared with
bench/training.py). The workspace is copied to --workdir and every other model's `champion` alias is removed in
the copy, so both servers serve that one model and `/invocations` means the same thing on both.

Servers, each its own process on a free loopback port, one uvicorn worker each (both defaults; --workers N sets
both), all three started before the first step and stopped at the end, even on error or Ctrl+C:

- anchor: `mlflow models serve -m models:/<name>@champion --env-manager local` (MLflow's FastAPI scoring server);
- ours: `foundation serve` (micro-batching on, prediction feedback log on: the defaults; each answer waits until
  its predictions are durable in the log's spool, one `fdatasync` for all the requests waiting: group commit);
- ours, log off: the same with `FOUNDATION_API__PREDICTION_LOG=false`.

Load generator: `wrk` (Debian package `wrk`; C, epoll, keep-alive connections, one thread), in its own process,
a Lua script POSTing one fixed JSON body. A Python load generator (asyncio + httpx) spends about as much CPU per
request as the server it measures; on a 2-core machine it would take the server's second core and cap the result.
The CPU that wrk, the server and everything else used during each step is measured and printed. wrk is
closed-loop: N clients each send the next request when the previous answer arrives, so at saturation the mean
latency is N / throughput (Little's law).

Steps (each: --warmup seconds of the same load, discarded, then --duration seconds measured; with --repeat R the
servers take turns R times and the best throughput is kept, with its own latencies):

- single row, `dataframe_split` (MLflow's scoring protocol) on `POST /invocations`: anchor, ours, ours log off,
  at each of --clients (1, 8, 32);
- single row on our `POST /v1/models/<name>/predict` (`{"instances": [...]}`), log on and off;
- a 1,000-row `dataframe_split` batch (rows of the demo's feature table) on `/invocations` of each server, and
  `/predict` with 1,000 instances, one client.

Every answer must be 2xx (wrk counts the others; a step with errors is flagged) and, before the load, both servers
must return the same probabilities for the same rows.

Targets (issue #6): ours >= 3x the anchor's single-row throughput at 32 clients; our p99 <= 25 ms at 32 clients;
the prediction log costs <= 10% throughput. A benchmark reports, it does not fail: exit 0 whatever the numbers.

Hostile mode (`--hostile`, issue 14): our server alone (defaults), single-row `/predict`. Each round measures
--normal-clients (24) normal clients alone, then the same normal clients while --hostile-clients (8) others send
non-finite numbers (`Infinity`, `-Infinity`, `1e400`, `"Infinity"`, `NaN` in a required column, `true`, in turn:
each answered 422) on their own wrk, at the same time. Target: the normal clients keep >= 90% of their all-normal
throughput. (Before the fix these bodies were 500s that broke the shared micro-batch: 964 -> 120 req/s.)

Score-by-key mode (`--by-key`, issue 16): our server alone (defaults), single-row `POST /v1/models/<name>/predict`
against `POST /v1/models/<name>/predict-by-key` with one truck's key (its latest feature row looked up in the
in-process index, serving.lookup), taking turns at each of --clients, best of --repeat. Target: predict-by-key p99
at 32 clients within 1.5x of plain predict's, in the same run.

    .venv/bin/python bench/serving.py                            # 10 s per step, ~4 minutes
    .venv/bin/python bench/serving.py --duration 5 --warmup 1 --clients 1,32
    .venv/bin/python bench/serving.py --hostile --repeat 3             # the hostile-clients mode only
    .venv/bin/python bench/serving.py --by-key --clients 32 --repeat 3 # predict-by-key against predict
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workspace import REPO, demo_workspace

MODEL = "fleet_maintenance__failure_risk"
BATCH_ROWS = 1_000
TARGET_RATIO = 3.0
TARGET_P99_MS = 25.0
TARGET_LOG_COST = 0.10
TARGET_BY_KEY_P99 = 1.5  # predict-by-key p99 / predict p99, same model, same run
BIN = Path(sys.executable).parent
# the documented way to serve in this environment (the default env manager needs pyenv and the network)
MLFLOW_SERVE_FLAGS = ["--env-manager", "local", "-h", "127.0.0.1", "-p", "{port}"]

# wrk's Lua script: one fixed POST body; `done` prints the summary as one JSON line (latencies in microseconds).
WRK_SCRIPT = """\
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then wrk.headers["X-API-Key"] = key end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"mean_us": %.1f, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# The hostile clients' script: the bodies of $BENCH_BODIES (one per line), sent in turn.
HOSTILE_SCRIPT = """\
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = os.getenv("BENCH_KEY")}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", nil, headers, bodies[i])
end
""" + WRK_SCRIPT[WRK_SCRIPT.index("done = function") :]
TARGET_HOSTILE_KEPT = 0.90
# JSON tokens a hostile client puts in a required double column (each a 422 since issue 14)
HOSTILE_TOKENS = ("Infinity", "-Infinity", "1e400", '"Infinity"', "NaN", "true")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, body: Any = None, key: str = "", timeout: float = 30) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-API-Key"] = key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")


@dataclass
class Server:
    """A server process in its own session (process group), so that stopping it stops its children too."""

    label: str
    command: list[str]
    env: dict[str, str]
    ready_path: str
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                if http(self.base + self.ready_path, timeout=5)[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} not ready within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.3)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.label} exited ({self.process.returncode}):\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's process tree (mlflow runs uvicorn as a child)."""
        import psutil

        if self.process is None:
            return 0.0
        try:
            root = psutil.Process(self.process.pid)
            total = 0.0
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
            return total
        except psutil.Error:
            return 0.0

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the server's process group (ours flushes its feedback log then), SIGKILL after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


@dataclass
class Step:
    server: str  # anchor | ours | ours_nolog
    route: str  # invocations | predict | predict-by-key
    rows: int  # rows per request
    clients: int


@dataclass
class Result:
    step: Step
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    server_cpu_s: float  # CPU the server's processes used during the step
    server_cores: float
    wrk_cores: float
    other_cores: float
    load_avg: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.step.rows

    @property
    def cpu_ms(self) -> float:
        """Server CPU per request: what the machine's load changes least (the throughput per core is 1 / this)."""
        return self.server_cpu_s * 1000 / max(1, self.requests)


def bench_workspace(demo_root: Path, workdir: Path) -> tuple[Path, str]:
    """A fresh copy of the demo workspace where only MODEL has a champion (both servers serve that one model);
    (its root, the champion's candidate name)."""
    from foundation.core.workspace import Workspace
    from mlops.registry import mlflow_client

    root = workdir / "workspace"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(demo_root, root, ignore=shutil.ignore_patterns("api_predictions", "*.lock"))
    client = mlflow_client(Workspace.open(root))
    for registered in client.search_registered_models():
        if registered.name != MODEL and "champion" in (registered.aliases or {}):
            client.delete_registered_model_alias(registered.name, "champion")
    champion = client.get_model_version_by_alias(MODEL, "champion")
    return root, (champion.tags or {}).get("foundation.candidate") or "?"


def feature_rows(root: Path, columns: list[str], count: int) -> list[list[Any]]:
    """`count` complete rows of the demo's feature table, in the model's input column order, JSON-ready."""
    from foundation.core.workspace import Workspace, load_model_specs
    from mlops.dataset import read_feature_table

    usecase, _, name = MODEL.partition("__")
    ref = next(r for r in load_model_specs(root).models if r.usecase == usecase and r.spec.name == name)
    frame, _ = read_feature_table(Workspace.open(root), usecase, ref.spec, training=False)
    frame = frame[columns].dropna()
    rows = [[v if isinstance(v, str) else float(v) for v in row] for row in frame.itertuples(index=False)]
    while len(rows) < count:  # a small demo: repeat its rows
        rows = rows + rows
    return rows[:count]


def run_wrk(
    wrk: str, script: Path, url: str, body: Path, key: str, clients: int, seconds: float
) -> tuple[dict[str, Any], float]:
    """One wrk run; (its summary, the CPU seconds wrk used)."""
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_KEY": key}
    command = [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}) on {url}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(line[len("BENCH ") :]), used


def busy_seconds() -> float:
    import psutil

    t = psutil.cpu_times()  # guest time is already inside user time: not summed twice
    return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def measure(
    step: Step, server: Server, url: str, body: Path, key: str, wrk: str, script: Path, args: argparse.Namespace
) -> Result:
    if args.warmup > 0:
        run_wrk(wrk, script, url, body, key, step.clients, args.warmup)
    server.check_alive()
    cpu_server, cpu_all, load = server.cpu_seconds(), busy_seconds(), os.getloadavg()[0]
    started = time.perf_counter()
    summary, wrk_cpu = run_wrk(wrk, script, url, body, key, step.clients, args.duration)
    wall = time.perf_counter() - started
    server_cpu = server.cpu_seconds() - cpu_server
    other = max(0.0, busy_seconds() - cpu_all - server_cpu - wrk_cpu)
    server.check_alive()
    seconds = summary["duration_us"] / 1e6
    errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Result(
        step,
        summary["requests"],
        seconds,
        summary["p50_us"] / 1000,
        summary["p90_us"] / 1000,
        summary["p99_us"] / 1000,
        summary["max_us"] / 1000,
        errors,
        server_cpu,
        server_cpu / wall,
        wrk_cpu / wall,
        other / wall,
        load,
    )


def check_same_answers(servers: dict[str, Server], columns: list[str], rows: list[list[Any]], key: str) -> int:
    """Both servers must score the same rows the same (up to float rounding); the number of rows compared."""
    body = {"dataframe_split": {"columns": columns, "data": rows[:50]}}
    answers = {}
    for name in ("anchor", "ours"):
        status, answer = http(servers[name].base + "/invocations", body, key if name != "anchor" else "")
        if status != 200:
            raise RuntimeError(f"{servers[name].label} answered {status} to a valid body: {str(answer)[:500]}")
        answers[name] = answer["predictions"]
    pairs = zip(answers["anchor"], answers["ours"], strict=True)
    worst = max(abs(a - b) for ra, rb in pairs for a, b in zip(ra, rb, strict=True))
    if worst > 1e-9:
        raise RuntimeError(f"the servers disagree on the same rows (max probability difference {worst:.2e})")
    return len(rows[:50])


def spool_flushes(log_path: Path) -> tuple[int, int] | None:
    """(requests, disk flushes) of the prediction log's spool, from the line our server logs at shutdown."""
    import re

    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    found = re.findall(r"spool: (\d+) request\(s\) in (\d+) disk flush", text)
    return (sum(int(r) for r, _ in found), sum(int(f) for _, f in found)) if found else None


# Run in a child process: this script's folder (bench/, first on sys.path) holds a `serving.py` that would shadow
# the `serving` package. Prints the prediction log's CPU microseconds per request.
LOG_CPU_CHILD = """
import asyncio, json, sys, tempfile, time
from pathlib import Path
from foundation.core.workspace import Workspace
from serving.prediction_log import PredictionLog, Served

model, row, folder = sys.argv[1], json.loads(sys.argv[2]), sys.argv[5]
group, requests = int(sys.argv[3]), int(sys.argv[4])
with tempfile.TemporaryDirectory(dir=folder) as root:
    (Path(root) / "foundation.yaml").write_text("{}\\n", encoding="utf-8")
    log = PredictionLog(Workspace.open(Path(root)), 5.0, 5000, 100_000)

    def served(i):
        prediction = {"prediction_id": f"p{i}", "prediction": 1, "score": 0.25}
        return Served(model, 1, f"r{i}", "key-bench", time.time(), [row], [prediction])

    async def load(first, count):
        for start in range(first, first + count, group):
            await asyncio.gather(*(log.record(served(start + j)) for j in range(group)))

    asyncio.run(load(0, 1024))  # warm-up: the first Arrow conversion and Delta write pay one-time costs
    log.flush()
    started = time.process_time()
    asyncio.run(load(1024, requests))
    log.close()
    print((time.process_time() - started) * 1e6 / requests)
"""


def log_cpu_per_request(row: dict[str, Any], group: int, workdir: Path, requests: int = 10_240) -> float:
    """CPU microseconds the prediction log (serving.prediction_log: spool with its fdatasync, Delta writes) spends per
    single-row request, on a fresh workspace under `workdir`, `group` requests recorded at a time: each disk flush
    serves `group` requests."""
    command = [sys.executable, "-c", LOG_CPU_CHILD, MODEL, json.dumps(row), str(group), str(requests), str(workdir)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the prediction log's CPU measure failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def steps_for(clients: list[int]) -> list[Step]:
    steps = []
    for c in clients:
        steps += [Step("anchor", "invocations", 1, c), Step("ours", "invocations", 1, c)]
        steps += [Step("ours_nolog", "invocations", 1, c), Step("ours", "predict", 1, c)]
    top = max(clients)
    steps.append(Step("ours_nolog", "predict", 1, top))
    for server in ("anchor", "ours", "ours_nolog"):
        steps.append(Step(server, "invocations", BATCH_ROWS, 1))
    steps += [Step("ours", "predict", BATCH_ROWS, 1), Step("ours_nolog", "predict", BATCH_ROWS, 1)]
    return steps


LABELS = {
    "anchor": "anchor: mlflow models serve",
    "ours": "ours: foundation serve",
    "ours_nolog": "ours, prediction log off",
}


def label(step: Step) -> str:
    route = "/invocations" if step.route == "invocations" else f"/v1/models/{{name}}/{step.route}"
    return f"{LABELS[step.server]} {route}"


def print_tables(results: list[Result], args: argparse.Namespace, meta: dict[str, Any]) -> None:
    def find(server: str, route: str, rows: int, clients: int) -> Result | None:
        for r in results:
            s = r.step
            if (s.server, s.route, s.rows, s.clients) == (server, route, rows, clients):
                return r
        return None

    print(
        f"\nServing {MODEL} v{meta['version']} ({meta['estimator']}), {os.cpu_count()} CPUs, wrk {args.duration:g} s "
        f"per step after {args.warmup:g} s warm-up, best of {args.repeat}, {args.workers} worker(s) per server; "
        f"load average {meta['load_before']} before, {meta['load_after']} after\n"
    )
    print("Single row (`dataframe_split` on /invocations, `instances` on /predict), requests per second:\n")
    print(
        "| server, route | clients | req/s | vs anchor | p50 ms | p90 ms | p99 ms | max ms | errors "
        "| server CPU ms/req | server CPU (cores) | wrk CPU (cores) | other CPU (cores) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    single = [r for r in results if r.step.rows == 1]
    for r in sorted(single, key=lambda r: (r.step.clients, r.step.route != "invocations", r.step.server)):
        anchor = find("anchor", "invocations", 1, r.step.clients)
        ratio = f"{r.rps / anchor.rps:.2f}x" if anchor else "-"
        print(
            f"| {label(r.step)} | {r.step.clients} | {r.rps:,.0f} | {ratio} | {r.p50_ms:.1f} | {r.p90_ms:.1f} "
            f"| {r.p99_ms:.1f} | {r.max_ms:.0f} | {r.errors} | {r.cpu_ms:.2f} | {r.server_cores:.2f} "
            f"| {r.wrk_cores:.2f} | {r.other_cores:.2f} |"
        )
    print(f"\n{BATCH_ROWS:,}-row batch, one client:\n")
    print(
        "| server, route | rows/s | vs anchor | p50 ms | p99 ms | requests | errors | server CPU ms/req "
        "| server CPU (cores) | other CPU (cores) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    anchor_batch = find("anchor", "invocations", BATCH_ROWS, 1)
    for r in [r for r in results if r.step.rows == BATCH_ROWS]:
        ratio = f"{r.rows_per_s / anchor_batch.rows_per_s:.2f}x" if anchor_batch else "-"
        print(
            f"| {label(r.step)} | {r.rows_per_s:,.0f} | {ratio} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.requests:,} "
            f"| {r.errors} | {r.cpu_ms:.1f} | {r.server_cores:.2f} | {r.other_cores:.2f} |"
        )
    top = max(int(c) for c in args.clients.split(","))
    print("\nTargets:\n")
    print("| target | measured | verdict |")
    print("|---|---|---|")
    anchor = find("anchor", "invocations", 1, top)
    for route in ("invocations", "predict"):
        ours = find("ours", route, 1, top)
        if anchor and ours:
            ratio = ours.rps / anchor.rps
            verdict = "met" if ratio >= TARGET_RATIO else "missed"
            print(
                f"| single-row throughput >= {TARGET_RATIO:g}x the anchor at {top} clients ({label(ours.step)}) "
                f"| {ratio:.2f}x ({ours.rps:,.0f} vs {anchor.rps:,.0f} req/s) | {verdict} |"
            )
    for route in ("invocations", "predict"):
        ours = find("ours", route, 1, top)
        if ours:
            verdict = "met" if ours.p99_ms <= TARGET_P99_MS else "missed"
            print(
                f"| p99 <= {TARGET_P99_MS:g} ms at {top} clients ({label(ours.step)}) | {ours.p99_ms:.1f} ms "
                f"(p50 {ours.p50_ms:.1f} ms; Little's law floor {top / ours.rps * 1000:.1f} ms mean) | {verdict} |"
            )
    for route, rows, clients in (("invocations", 1, top), ("predict", 1, top), ("invocations", BATCH_ROWS, 1)):
        on, off = find("ours", route, rows, clients), find("ours_nolog", route, rows, clients)
        if on and off:
            cost = 1 - on.rows_per_s / off.rows_per_s
            cpu_cost = on.cpu_ms / off.cpu_ms - 1
            verdict = "met" if cost <= TARGET_LOG_COST else "missed"
            what = f"{rows:,} row(s), {clients} client(s), {route}"
            print(
                f"| prediction log costs <= {TARGET_LOG_COST:.0%} throughput ({what}) | {cost:+.1%} "
                f"({on.rows_per_s:,.0f} vs {off.rows_per_s:,.0f} rows/s); server CPU per request {cpu_cost:+.1%} "
                f"| {verdict} |"
            )
    if meta.get("spool"):
        requests, flushes = meta["spool"]
        print(
            f"\nPrediction log spool of `ours` over the whole run: {requests:,} requests made durable in "
            f"{flushes:,} disk flushes (fdatasync), {requests / max(1, flushes):.1f} requests per flush"
        )
    if meta.get("log_cpu_us"):
        print(
            "\nThe prediction log's own CPU per single-row request, in process (spool with its fdatasync, Delta "
            "writes; process CPU time, which the machine's load changes least), by requests per disk flush, against a "
            "request's server CPU with the log off (/invocations; 1 client for 1 request per flush, else "
            f"{top} clients):\n"
        )
        print("| requests per flush | log CPU us/request | share of a request's server CPU (log off) |")
        print("|---:|---:|---:|")
        for group, cpu_us in meta["log_cpu_us"].items():
            off = find("ours_nolog", "invocations", 1, 1 if group == 1 else top)
            share = f"{cpu_us / (off.cpu_ms * 1000):.1%}" if off else "-"
            print(f"| {group} | {cpu_us:.0f} | {share} |")
    bad = [r for r in results if r.errors]
    if bad:
        print(
            f"\nWARNING: {len(bad)} step(s) had non-2xx answers or socket errors: "
            + ", ".join(label(r.step) for r in bad)
        )


def hostile_bodies(columns: list[str], row: list[Any]) -> list[str]:
    """Pure: one single-row `/predict` body per hostile token, in the first numeric column."""
    at = next(i for i, v in enumerate(row) if not isinstance(v, str))
    body = json.dumps({"instances": [dict(zip(columns, [*row[:at], "@HOSTILE@", *row[at + 1 :]], strict=True))]})
    return [body.replace('"@HOSTILE@"', token) for token in HOSTILE_TOKENS]


def wrk_process(
    wrk: str, script: Path, url: str, env: dict[str, str], clients: int, seconds: float
) -> subprocess.Popen[str]:
    command = [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script), url]
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wrk_summary(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    line = next((x for x in out.splitlines() if x.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
    summary = json.loads(line[len("BENCH ") :])
    summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
    return summary


def hostile_round(
    server: Server, url: str, normal: dict[str, str], hostile: dict[str, str], args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """One round: the normal clients alone, then with the hostile ones (two wrk processes at once)."""
    normal_script, hostile_script = workdir / "post.lua", workdir / "hostile.lua"
    seconds, limit = args.duration, args.duration + 60
    if args.warmup > 0:
        wrk_summary(wrk_process(args.wrk, normal_script, url, normal, args.normal_clients, args.warmup), limit)
    cpu = server.cpu_seconds()
    alone = wrk_summary(wrk_process(args.wrk, normal_script, url, normal, args.normal_clients, seconds), limit)
    alone["server_cpu_s"] = server.cpu_seconds() - cpu
    cpu = server.cpu_seconds()
    attackers = wrk_process(args.wrk, hostile_script, url, hostile, args.hostile_clients, seconds)
    attacked = wrk_summary(wrk_process(args.wrk, normal_script, url, normal, args.normal_clients, seconds), limit)
    attack = wrk_summary(attackers, limit)
    attacked["server_cpu_s"] = server.cpu_seconds() - cpu
    server.check_alive()
    return {"alone": alone, "attacked": attacked, "hostile": attack, "load": os.getloadavg()[0]}


def hostile_main(args: argparse.Namespace) -> None:
    """`--hostile`: see the module's doc."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    trucks, days = (int(x) for x in args.size.lower().split("x"))
    print(f"preparing the demo ({trucks} trucks x {days} days, cached)...", file=sys.stderr, flush=True)
    root, candidate = bench_workspace(demo_workspace(Path(args.demo_dir), trucks, days), workdir)
    key = "bench-" + secrets.token_hex(16)
    (workdir / "post.lua").write_text(WRK_SCRIPT)
    (workdir / "hostile.lua").write_text(HOSTILE_SCRIPT)
    env = {**os.environ, "FOUNDATION_API_KEYS": key}
    command = [str(BIN / "foundation"), "--workspace", str(root), "serve", "--port", "{port}"]
    server = Server(
        LABELS["ours"], [*command, "--workers", str(args.workers)], env, "/health/ready", workdir / "ours.log"
    )
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rounds = []
    try:
        server.start()
        server.wait_ready(args.start_timeout)
        status, detail = http(f"{server.base}/v1/models/{MODEL}", key=key)
        if status != 200:
            raise RuntimeError(f"GET /v1/models/{MODEL} answered {status}: {detail}")
        columns = [c["name"] for c in detail["input_schema"]]
        row = feature_rows(root, columns, 1)[0]
        url = f"{server.base}/v1/models/{MODEL}/predict"
        normal_body, bodies = workdir / "body-normal.json", workdir / "bodies-hostile.txt"
        normal_body.write_text(json.dumps({"instances": [dict(zip(columns, row, strict=True))]}))
        bodies.write_text("\n".join(hostile_bodies(columns, row)) + "\n")
        refused: Counter[int] = Counter()  # what the hostile bodies get: 422 since issue 14 (500 before)
        for body in hostile_bodies(columns, row):
            request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json", "X-API-Key": key})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    refused[response.status] += 1
            except urllib.error.HTTPError as exc:
                refused[exc.code] += 1
        normal = {"BENCH_BODY": str(normal_body), "BENCH_KEY": key}
        hostile = {"BENCH_BODIES": str(bodies), "BENCH_KEY": key}
        for i in range(args.repeat):
            print(
                f"[{i + 1}/{args.repeat}] normal clients alone, then with hostile ones...", file=sys.stderr, flush=True
            )
            rounds.append(hostile_round(server, url, normal, hostile, args, workdir))
    finally:
        server.stop()
    print_hostile(rounds, args, load_before, candidate, refused)
    out = workdir / f"hostile-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps({"args": vars(args), "hostile_statuses": refused, "rounds": rounds}, indent=1))
    print(f"\nraw results: {out}", file=sys.stderr)


def print_hostile(
    rounds: list[dict[str, Any]], args: argparse.Namespace, load_before: str, candidate: str, refused: Counter[int]
) -> None:
    n, h = args.normal_clients, args.hostile_clients
    statuses = ", ".join(f"{count} x {status}" for status, count in sorted(refused.items()))
    print(
        f"\nHostile clients: {MODEL} ({candidate}) on `foundation serve` (defaults, {args.workers} worker(s)), "
        f"single-row /predict, wrk {args.duration:g} s per step after {args.warmup:g} s warm-up, {os.cpu_count()} "
        f"CPUs; load average {load_before} before, {' '.join(f'{x:.2f}' for x in os.getloadavg())} after; "
        f"the {len(HOSTILE_TOKENS)} hostile bodies answered {statuses}\n"
    )
    print(
        f"| round | {n} normal alone req/s | p50 / p99 ms | with {h} hostile: normal req/s | p50 / p99 ms "
        "| kept | hostile req/s (non-2xx) | normal errors | server CPU ms/req alone / attacked | load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(rounds, 1):
        alone, attacked, attack = r["alone"], r["attacked"], r["hostile"]
        errors = sum(attacked[k] for k in ("connect", "read", "write", "status", "timeout"))
        cpu_alone = alone["server_cpu_s"] * 1000 / max(1, alone["requests"])
        cpu_attacked = attacked["server_cpu_s"] * 1000 / max(1, attacked["requests"] + attack["requests"])
        print(
            f"| {i} | {alone['rps']:,.0f} | {alone['p50_us'] / 1000:.1f} / {alone['p99_us'] / 1000:.1f} "
            f"| {attacked['rps']:,.0f} | {attacked['p50_us'] / 1000:.1f} / {attacked['p99_us'] / 1000:.1f} "
            f"| {attacked['rps'] / alone['rps']:.0%} | {attack['rps']:,.0f} ({attack['status']:,}) | {errors} "
            f"| {cpu_alone:.2f} / {cpu_attacked:.2f} | {r['load']:.1f} |"
        )
    best_alone = max(r["alone"]["rps"] for r in rounds)
    best_attacked = max(r["attacked"]["rps"] for r in rounds)
    kept = best_attacked / best_alone
    verdict = "met" if kept >= TARGET_HOSTILE_KEPT else "missed"
    print(
        f"\n| target | measured | verdict |\n|---|---|---|\n| {n} normal clients keep >= {TARGET_HOSTILE_KEPT:.0%} "
        f"of their all-normal throughput beside {h} hostile ones | {kept:.0%} (best {best_attacked:,.0f} vs "
        f"{best_alone:,.0f} req/s) | {verdict} |"
    )


def by_key_bodies(root: Path, columns: list[str], workdir: Path) -> dict[str, Path]:
    """The two single-row bodies: a row of the feature table for /predict, a truck's key for /predict-by-key."""
    from foundation.core.workspace import Workspace, load_model_specs
    from mlops.dataset import read_feature_table

    usecase, _, name = MODEL.partition("__")
    ref = next(r for r in load_model_specs(root).models if r.usecase == usecase and r.spec.name == name)
    frame, _ = read_feature_table(Workspace.open(root), usecase, ref.spec, training=False)
    key = {c: str(frame[c].iloc[-1]) for c in ref.spec.entity}
    row = feature_rows(root, columns, 1)[0]
    bodies = {"predict": {"instances": [dict(zip(columns, row, strict=True))]}, "predict-by-key": {"keys": [key]}}
    files = {}
    for route, body in bodies.items():
        files[route] = workdir / f"body-{route}.json"
        files[route].write_text(json.dumps(body))
    return files


def by_key_main(args: argparse.Namespace) -> None:
    """`--by-key`: see the module's doc."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    trucks, days = (int(x) for x in args.size.lower().split("x"))
    print(f"preparing the demo ({trucks} trucks x {days} days, cached)...", file=sys.stderr, flush=True)
    root, candidate = bench_workspace(demo_workspace(Path(args.demo_dir), trucks, days), workdir)
    key = "bench-" + secrets.token_hex(16)
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)
    command = [str(BIN / "foundation"), "--workspace", str(root), "serve", "--port", "{port}"]
    env = {**os.environ, "FOUNDATION_API_KEYS": key}
    server = Server(LABELS["ours"], [*command, "--workers", str(args.workers)], env, "/health/ready", workdir / "k.log")
    results: dict[tuple[str, int], Result] = {}
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        server.start()
        server.wait_ready(args.start_timeout)
        status, detail = http(f"{server.base}/v1/models/{MODEL}", key=key)
        if status != 200:
            raise RuntimeError(f"GET /v1/models/{MODEL} answered {status}: {detail}")
        files = by_key_bodies(root, [c["name"] for c in detail["input_schema"]], workdir)
        status, answer = http(
            f"{server.base}/v1/models/{MODEL}/predict-by-key", json.loads(files["predict-by-key"].read_text()), key
        )
        if status != 200 or not answer["predictions"][0]["found"]:
            raise RuntimeError(f"predict-by-key answered {status}: {str(answer)[:500]}")
        for round_ in range(args.repeat):
            for clients in (int(c) for c in args.clients.split(",")):
                for route in ("predict", "predict-by-key"):
                    print(f"[{round_ + 1}/{args.repeat}] {route}, {clients} client(s)...", file=sys.stderr, flush=True)
                    step = Step("ours", route, 1, clients)
                    url = f"{server.base}/v1/models/{MODEL}/{route}"
                    result = measure(step, server, url, files[route], key, args.wrk, script, args)
                    best = results.get((route, clients))
                    if best is None or result.p99_ms < best.p99_ms:
                        results[(route, clients)] = result
    finally:
        server.stop()
    print_by_key(results, args, load_before, candidate)


def print_by_key(
    results: dict[tuple[str, int], Result], args: argparse.Namespace, load_before: str, candidate: str
) -> None:
    print(
        f"\nScore by key: {MODEL} ({candidate}) on `foundation serve` (defaults, {args.workers} worker(s)), "
        f"single row, wrk {args.duration:g} s per step after {args.warmup:g} s warm-up, best p99 of {args.repeat}, "
        f"{os.cpu_count()} CPUs; load average {load_before} before, "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after\n"
    )
    print("| route | clients | req/s | p50 ms | p90 ms | p99 ms | errors | server CPU ms/req | other CPU (cores) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (route, clients), r in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        print(
            f"| {route} | {clients} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.errors} "
            f"| {r.cpu_ms:.2f} | {r.other_cores:.2f} |"
        )
    top = max(int(c) for c in args.clients.split(","))
    plain, keyed = results.get(("predict", top)), results.get(("predict-by-key", top))
    if plain and keyed:
        ratio = keyed.p99_ms / plain.p99_ms
        verdict = "met" if ratio <= TARGET_BY_KEY_P99 else "missed"
        print(
            f"\n| target | measured | verdict |\n|---|---|---|\n| predict-by-key p99 <= {TARGET_BY_KEY_P99:g}x "
            f"predict's at {top} clients | {ratio:.2f}x ({keyed.p99_ms:.1f} vs {plain.p99_ms:.1f} ms) | {verdict} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See docs/benchmarks.md (Serving) for results and how to read them.",
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds measured per step (default 10)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of the same load before each step, discarded")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients (keep-alive connections) per step")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the servers take turns, best kept (default 1)")
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn workers of every server (default 1, both defaults)"
    )
    parser.add_argument("--size", default="40x60", help="demo fleet the model is trained on (trucks x days)")
    parser.add_argument("--demo-dir", default=str(REPO / "bench" / ".out" / "ml"), help="demo workspace cache")
    parser.add_argument(
        "--workdir",
        default=str(REPO / "bench" / ".out" / "serving"),
        help="the workspace copy, request bodies, server logs and results-<time>.json (git-ignored by default)",
    )
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="the wrk binary (apt-get install wrk)")
    parser.add_argument("--start-timeout", type=float, default=300, help="seconds to wait for each server")
    parser.add_argument("--hostile", action="store_true", help="run only the hostile-clients mode (see above)")
    parser.add_argument("--by-key", action="store_true", help="run only predict-by-key against predict (see above)")
    parser.add_argument("--normal-clients", type=int, default=24, help="--hostile: normal clients (default 24)")
    parser.add_argument("--hostile-clients", type=int, default=8, help="--hostile: hostile clients (default 8)")
    args = parser.parse_args()
    if shutil.which(args.wrk) is None:
        parser.error(f"wrk not found ({args.wrk}): install it (`apt-get install wrk` on Debian) or pass --wrk PATH")
    if args.hostile:
        hostile_main(args)
        return
    if args.by_key:
        by_key_main(args)
        return
    clients = [int(c) for c in args.clients.split(",")]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # a SIGTERM (CI timeout, kill) unwinds like Ctrl+C, so the `finally` below stops every server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    trucks, days = (int(x) for x in args.size.lower().split("x"))
    print(f"preparing the demo ({trucks} trucks x {days} days, cached)...", file=sys.stderr, flush=True)
    root, candidate = bench_workspace(demo_workspace(Path(args.demo_dir), trucks, days), workdir)
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)
    key = "bench-" + secrets.token_hex(16)  # a throwaway key for this run's servers only
    from foundation.core.workspace import Workspace
    from mlops.registry import tracking_uri

    base_env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow runs `uvicorn` from PATH
        "FOUNDATION_API_KEYS": key,
        "MLFLOW_TRACKING_URI": tracking_uri(Workspace.open(root)),  # absolute: mlflow's server runs elsewhere
    }
    workers = ["--workers", str(args.workers)]
    foundation = [str(BIN / "foundation"), "--workspace", str(root), "serve", "--port", "{port}", *workers]
    servers = {
        "anchor": Server(
            LABELS["anchor"],
            [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion", *MLFLOW_SERVE_FLAGS, *workers],
            base_env,
            "/ping",
            workdir / "anchor.log",
        ),
        "ours": Server(LABELS["ours"], foundation, base_env, "/health/ready", workdir / "ours.log"),
        "ours_nolog": Server(
            LABELS["ours_nolog"],
            foundation,
            {**base_env, "FOUNDATION_API__PREDICTION_LOG": "false"},
            "/health/ready",
            workdir / "ours_nolog.log",
        ),
    }
    results: dict[tuple[str, str, int, int], Result] = {}
    meta: dict[str, Any] = {"load_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            print(f"waiting for {server.label} on {server.base}...", file=sys.stderr, flush=True)
            server.wait_ready(args.start_timeout)
        status, detail = http(f"{servers['ours'].base}/v1/models/{MODEL}", key=key)
        if status != 200:
            raise RuntimeError(f"GET /v1/models/{MODEL} answered {status}: {detail}")
        columns = [c["name"] for c in detail["input_schema"]]
        meta["version"] = detail["version"]
        meta["estimator"] = candidate
        rows = feature_rows(root, columns, BATCH_ROWS)
        meta["compared_rows"] = check_same_answers(servers, columns, rows, key)
        bodies = {
            ("invocations", 1): {"dataframe_split": {"columns": columns, "data": rows[:1]}},
            ("predict", 1): {"instances": [dict(zip(columns, rows[0], strict=True))]},
            ("invocations", BATCH_ROWS): {"dataframe_split": {"columns": columns, "data": rows}},
            ("predict", BATCH_ROWS): {"instances": [dict(zip(columns, r, strict=True)) for r in rows]},
        }
        files = {}
        for (route, n), body in bodies.items():
            files[(route, n)] = workdir / f"body-{route}-{n}.json"
            files[(route, n)].write_text(json.dumps(body))
        steps = steps_for(clients)
        for round_ in range(args.repeat):
            for i, step in enumerate(steps, 1):
                server = servers[step.server]
                path = "/invocations" if step.route == "invocations" else f"/v1/models/{MODEL}/predict"
                print(
                    f"[{round_ + 1}/{args.repeat}] {i}/{len(steps)} {label(step)}, {step.rows} row(s), "
                    f"{step.clients} client(s)...",
                    file=sys.stderr,
                    flush=True,
                )
                result = measure(
                    step,
                    server,
                    server.base + path,
                    files[(step.route, step.rows)],
                    "" if step.server == "anchor" else key,
                    args.wrk,
                    script,
                    args,
                )
                ident = (step.server, step.route, step.rows, step.clients)
                if ident not in results or result.rps > results[ident].rps:
                    results[ident] = result
    finally:
        for server in servers.values():
            server.stop()
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    meta["spool"] = spool_flushes(servers["ours"].log_path)
    print("measuring the prediction log's CPU per request in process...", file=sys.stderr, flush=True)
    row = json.loads(files[("predict", 1)].read_text())["instances"][0]
    meta["log_cpu_us"] = {group: log_cpu_per_request(row, group, workdir) for group in (1, 16, 32)}
    print_tables(list(results.values()), args, meta)
    out = workdir / f"results-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(
        json.dumps(
            {
                "meta": meta,
                "args": vars(args),
                "results": [
                    {**vars(r.step), **{k: v for k, v in vars(r).items() if k != "step"}} for r in results.values()
                ],
            },
            indent=1,
        )
    )
    print(f"\nraw results: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
