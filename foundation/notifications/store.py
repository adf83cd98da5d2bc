"""Incident state: a small SQLite file under the state folder (`<state_dir>/notifications/incidents.sqlite`).

It keeps every incident (open and resolved) so that a restarted daemon neither repeats an alert nor forgets to say
it recovered. `transaction()` holds SQLite's write lock from reading the open incidents to recording what changed:
two sensors evaluated at once cannot both open the same incident.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from foundation.notifications.incidents import Incident, IncidentKey, Transition

if TYPE_CHECKING:
    from foundation.workspace import Workspace

STORE_FILE = "notifications/incidents.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL, usecase TEXT NOT NULL, asset TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL,
    owners TEXT NOT NULL, value TEXT NOT NULL, link TEXT NOT NULL,
    opened_at TEXT NOT NULL, resolved_at TEXT, resolved_value TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_incident ON incidents (asset, rule) WHERE resolved_at IS NULL;
"""
COLUMNS = "id, event, usecase, asset, rule, severity, owners, value, link, opened_at, resolved_at, resolved_value"


def _incident(row: tuple) -> Incident:
    id_, event, usecase, asset, rule, severity, owners, value, link, opened, resolved, resolved_value = row
    return Incident(
        event=event,
        usecase=usecase,
        asset=asset,
        rule=rule,
        severity=severity,
        owners=tuple(json.loads(owners)),
        value=value,
        link=link,
        opened_at=datetime.fromisoformat(opened),
        resolved_at=datetime.fromisoformat(resolved) if resolved else None,
        resolved_value=resolved_value,
        id=id_,
    )


class IncidentStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of_workspace(cls, workspace: Workspace) -> IncidentStore:
        return cls(workspace.state_dir / STORE_FILE)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.executescript(SCHEMA)
        return con

    def open(self) -> dict[IncidentKey, Incident]:
        if not self.path.exists():
            return {}
        con = self._connect()
        try:
            return _open_incidents(con)
        finally:
            con.close()

    def history(self) -> list[Incident]:
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            return [_incident(r) for r in con.execute(f"SELECT {COLUMNS} FROM incidents ORDER BY id").fetchall()]
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[Recorder]:
        """Open incidents read and changes recorded under one write lock; committed when the block ends."""
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            yield Recorder(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()


class Recorder:
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def open(self) -> dict[IncidentKey, Incident]:
        return _open_incidents(self.con)

    def record(self, changes: list[Transition]) -> list[Transition]:
        """Write the transitions; returns them with the opened incidents' ids."""
        recorded = []
        for change in changes:
            i = change.incident
            if change.kind == "opened":
                cursor = self.con.execute(
                    "INSERT INTO incidents (event, usecase, asset, rule, severity, owners, value, link, opened_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        i.event,
                        i.usecase,
                        i.asset,
                        i.rule,
                        i.severity,
                        json.dumps(list(i.owners)),
                        i.value,
                        i.link,
                        i.opened_at.isoformat(),
                    ),
                )
                recorded.append(replace(change, incident=replace(i, id=cursor.lastrowid)))
            else:
                self.con.execute(
                    "UPDATE incidents SET resolved_at = ?, resolved_value = ? WHERE id = ?",
                    (i.resolved_at.isoformat() if i.resolved_at else None, i.resolved_value, i.id),
                )
                recorded.append(change)
        return recorded


def _open_incidents(con: sqlite3.Connection) -> dict[IncidentKey, Incident]:
    rows = con.execute(f"SELECT {COLUMNS} FROM incidents WHERE resolved_at IS NULL ORDER BY id").fetchall()
    return {incident.key: incident for incident in map(_incident, rows)}
