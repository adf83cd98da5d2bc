"""Shared fixtures: a throwaway workspace written from Python data, and DuckDB reads of its lakehouse.

`make_workspace(sources=..., files=..., settings=...)` writes `foundation.yaml`, `usecases/<uc>/sources/<name>.yaml`
(from a dict, or verbatim from a string) and landing files, and returns a `WorkspaceKit`: the paths plus small
helpers to run a load and read the bronze / quarantine tables back through DuckDB (never through deltalake's
pyarrow readers, which abort the interpreter at exit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from deltalake import DeltaTable
from pg_server import PostgresServer, running_postgres

from foundation.core.workspace import SourceRef, Workspace
from foundation.engine.ingest.report import LoadReport
from foundation.engine.ingest.runner import ingest_source
from foundation.engine.lakehouse.catalog import register_bronze

DEFAULT_USECASE = "uc"


@dataclass
class WorkspaceKit:
    """A workspace on disk, with helpers to change it, load a source and read what landed."""

    root: Path
    usecase: str = DEFAULT_USECASE

    # -- writing -------------------------------------------------------------------------------------------
    def write_settings(self, settings: dict[str, Any]) -> Path:
        path = self.root / "foundation.yaml"
        path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        return path

    def write_source(self, spec: dict[str, Any] | str, name: str | None = None, usecase: str | None = None) -> Path:
        """A source YAML file: a dict is dumped (keys in order), a string is written verbatim."""
        if name is None:
            if not isinstance(spec, dict):
                raise ValueError("name the file of a source given as text")
            name = str(spec["name"])
        folder = self.root / "usecases" / (usecase or self.usecase) / "sources"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.yaml"
        text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        return path

    def land(self, relative: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        """A landing file under the workspace root (text is written with `encoding`, bytes as they are)."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding=encoding, newline="")
        return path

    # -- running -------------------------------------------------------------------------------------------
    def open(self) -> Workspace:
        """A fresh Workspace (its scan is cached, so reopen after changing files)."""
        return Workspace.open(self.root)

    def source(self, name: str, usecase: str | None = None) -> SourceRef:
        workspace = self.open()
        scan = workspace.scan
        assert scan.ok, "\n".join(e.format() for e in scan.errors)
        return next(s for s in scan.sources if s.usecase == (usecase or self.usecase) and s.name == name)

    def ingest(
        self, name: str, usecase: str | None = None, progress: Callable[[int], None] | None = None
    ) -> LoadReport:
        workspace = self.open()
        return ingest_source(workspace, self.source(name, usecase), progress)

    # -- reading -------------------------------------------------------------------------------------------
    def bronze_uri(self, name: str, usecase: str | None = None) -> str:
        return self.open().bronze_uri(usecase or self.usecase, name)

    def quarantine_uri(self, name: str, usecase: str | None = None) -> str:
        return self.open().quarantine_uri(usecase or self.usecase, name)

    def version(self, name: str, usecase: str | None = None) -> int | None:
        uri = Path(self.bronze_uri(name, usecase))
        return DeltaTable(str(uri)).version() if (uri / "_delta_log").is_dir() else None

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run SQL over the `bronze.*` views of the lakehouse; rows as dicts."""
        con = duckdb.connect()
        try:
            register_bronze(con, self.open().lakehouse_root)
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            con.close()

    def rows(self, name: str, order_by: str = "ALL", usecase: str | None = None) -> list[dict[str, Any]]:
        return self.query(f'SELECT * FROM bronze."{usecase or self.usecase}__{name}" ORDER BY {order_by}')

    def quarantine(self, name: str, usecase: str | None = None) -> list[dict[str, Any]]:
        view = f'bronze."{usecase or self.usecase}__{name}__quarantine"'
        return self.query(f"SELECT * FROM {view} ORDER BY _source_file, _source_line NULLS FIRST, _raw_record")

    def count(self, name: str, usecase: str | None = None) -> int:
        return self.query(f'SELECT count(*) AS n FROM bronze."{usecase or self.usecase}__{name}"')[0]["n"]


MakeWorkspace = Callable[..., WorkspaceKit]


@pytest.fixture
def make_workspace(tmp_path: Path) -> MakeWorkspace:
    """Factory: `make_workspace(sources=[spec, ...], files={path: content}, settings={...}, usecase="uc")`."""

    def make(
        sources: list[dict[str, Any]] | dict[str, dict[str, Any] | str] | None = None,
        files: dict[str, str | bytes] | None = None,
        settings: dict[str, Any] | None = None,
        usecase: str = DEFAULT_USECASE,
    ) -> WorkspaceKit:
        kit = WorkspaceKit(root=tmp_path / "ws", usecase=usecase)
        kit.root.mkdir(parents=True, exist_ok=True)
        kit.write_settings(settings or {})
        if isinstance(sources, dict):
            for name, spec in sources.items():
                kit.write_source(spec, name=name)
        else:
            for spec in sources or []:
                kit.write_source(spec)
        for relative, content in (files or {}).items():
            kit.land(relative, content)
        return kit

    return make


def source_spec(name: str, extract: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A valid source spec with the mandatory metadata filled in (tests override what they exercise)."""
    return {
        "name": name,
        "description": f"Test source {name} written by a test",
        "owner": "data-team@example.com",
        "schedule": "manual",
        "extract": extract,
        **fields,
    }


@pytest.fixture
def spec() -> Callable[..., dict[str, Any]]:
    """`spec(name, extract, **fields)`: a valid source spec dict to build on."""
    return source_spec


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the test session (tests/pg_server.py); `create_database(name)` gives a test its own."""
    with running_postgres() as server:
        yield server
