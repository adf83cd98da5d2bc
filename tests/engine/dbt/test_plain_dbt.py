"""Plain dbt works from the project folder with no variable and no ~/.dbt, and `foundation docs` builds dbt's site.

What plain dbt needs is written with the generated files: `dbt_project/profiles.yml` (found in the folder dbt runs
from) and the `dbt_project/foundation_macros` link to the framework's macros (listed in macro-paths).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest
import yaml

from foundation.core.workspace import Workspace, load_kpis
from foundation.engine.dbt.framework_macros import FRAMEWORK_MACROS_LINK, framework_macros_dir
from foundation.engine.dbt.generate import generate_files
from foundation.engine.dbt.invocation import dbt_executable
from foundation.engine.dbt.paths import dbt_paths
from foundation.engine.dbt.profiles_yml import PROFILE_HEADER
from foundation.engine.dbt.warehouse import warehouse_path
from tests.engine.dbt.conftest import copy_platform

FOUNDATION = [sys.executable, "-m", "foundation.cli.main"]


def plain_env(home: Path) -> dict[str, str]:
    """A user's shell: none of the variables foundation gives dbt, and a home without ~/.dbt."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "FOUNDATION_"))}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home)}


def test_the_generated_files_give_plain_dbt_a_profile_and_the_macros(tmp_path: Path) -> None:
    workspace = Workspace.open(copy_platform(tmp_path / "ws"))
    paths = dbt_paths(workspace)
    generate_files(workspace, paths, load_kpis(workspace.root).kpis)
    in_project = paths.project_dir / "profiles.yml"
    assert in_project.read_text() == (paths.profiles_dir / "profiles.yml").read_text()
    outputs = yaml.safe_load(in_project.read_text())["foundation"]["outputs"]
    assert outputs["duckdb"]["path"] == str(warehouse_path(workspace))
    link = paths.project_dir / FRAMEWORK_MACROS_LINK
    assert link.is_symlink() and link.resolve() == framework_macros_dir()

    # A profiles.yml of the user's own is theirs: never overwritten (foundation's own dbt uses the state folder's).
    mine = "foundation:\n  target: dev\n  outputs: {dev: {type: duckdb, path: mine.duckdb}}\n"
    in_project.write_text(mine)
    generate_files(workspace, paths, load_kpis(workspace.root).kpis)
    assert in_project.read_text() == mine
    assert (paths.profiles_dir / "profiles.yml").read_text().startswith(PROFILE_HEADER)


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's platform after `foundation docs` (no data loaded: bronze views are empty)."""
    root = copy_platform(tmp_path_factory.mktemp("plain") / "ws")
    result = subprocess.run(
        [*FOUNDATION, "--workspace", str(root), "docs", "--json"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    envelope = json.loads(result.stdout)
    site = envelope["data"]
    assert envelope["ok"] and Path(site["index"]).is_file()
    assert site["models"] >= 20 and site["sources"] >= 5
    catalog = json.loads((Path(site["target_dir"]) / "catalog.json").read_text())
    assert "source.foundation.fleet_maintenance.trucks" in catalog["sources"]  # its columns read from the warehouse
    return root


@pytest.mark.slow
def test_plain_dbt_build_and_docs_generate_run_from_the_project_folder(documented: Path, tmp_path: Path) -> None:
    project = documented / "dbt_project"
    env = plain_env(tmp_path / "home")
    build = subprocess.run([dbt_executable(), "build"], cwd=project, env=env, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:]
    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    assert results and {r["status"] for r in results} <= {"success", "pass"}
    con = duckdb.connect(str(documented / ".foundation" / "warehouse.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    finally:
        con.close()
    assert {"kpi_fleet_availability", "fct_truck_day"} <= tables  # built into the workspace's warehouse

    docs = subprocess.run([dbt_executable(), "docs", "generate"], cwd=project, env=env, capture_output=True, text=True)
    assert docs.returncode == 0, docs.stdout[-3000:]
    catalog = json.loads((project / "target" / "catalog.json").read_text())
    assert "model.foundation.kpi_fleet_availability" in catalog["nodes"]  # the table the build made


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_foundation_docs_serve_serves_the_site(documented: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [*FOUNDATION, "--workspace", str(documented), "docs", "--serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300  # generating again first, on a loaded machine
        page = b""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as response:
                    page = response.read()
                    break
            except OSError:
                time.sleep(0.5)
        assert b"dbt" in page, f"no docs page on port {port} (exit code {server.poll()})"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/manifest.json", timeout=5) as response:
            assert "model.foundation.kpi_fleet_availability" in json.loads(response.read())["nodes"]
    finally:
        server.terminate()
        server.wait(timeout=30)
