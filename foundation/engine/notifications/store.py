"""Incident state: a small SQLite file under the state folder (`<state_dir>/notifications/incidents.sqlite`).

It keeps every incident (open and resolved) so that a restarted daemon neither repeats an alert nor forgets to say
it recovered; the messages still to deliver (an outbox: a channel that is down gets them when it is back); and which
channels are down (so that an outage is logged once, not once per message). `transaction()` holds SQLite's write
lock from reading the open incidents to recording what changed: two sensors evaluated at once cannot both open the
same incident, nor both claim the same message.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from foundation.engine.notifications.incidents import Incident, IncidentKey, Transition

if TYPE_CHECKING:
    from foundation.core.workspace import Workspace

STORE_FILE = "notifications/incidents.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL, usecase TEXT NOT NULL, asset TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL,
    owners TEXT NOT NULL, value TEXT NOT NULL, link TEXT NOT NULL,
    opened_at TEXT NOT NULL, resolved_at TEXT, resolved_value TEXT, ref TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_incident ON incidents (asset, rule) WHERE resolved_at IS NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id), kind TEXT NOT NULL, channel TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', tries INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    created_at TEXT NOT NULL, claimed_at TEXT, done_at TEXT
);
CREATE INDEX IF NOT EXISTS pending_deliveries ON deliveries (status) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS channels (name TEXT PRIMARY KEY, down_since TEXT, last_error TEXT);
"""
CLAIM_TIMEOUT = timedelta(minutes=10)  # a claim older than this was an evaluation that died mid-send: take it again
ADDED_COLUMNS = {"ref": "TEXT NOT NULL DEFAULT ''"}  # columns added since the first version, and how
COLUMNS = "id, event, usecase, asset, rule, severity, owners, value, link, opened_at, resolved_at, resolved_value, ref"


def _incident(row: tuple) -> Incident:
    id_, event, usecase, asset, rule, severity, owners, value, link, opened, resolved, resolved_value, ref = row
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
        ref=ref,
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
        columns = {row[1] for row in con.execute("PRAGMA table_info(incidents)").fetchall()}
        for column, declaration in ADDED_COLUMNS.items():
            if column not in columns:  # a store written by an earlier version
                con.execute(f"ALTER TABLE incidents ADD COLUMN {column} {declaration}")
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
        self.outbox = Outbox(con)

    def open(self) -> dict[IncidentKey, Incident]:
        return _open_incidents(self.con)

    def record(self, changes: list[Transition]) -> list[Transition]:
        """Write the transitions; returns them with the opened incidents' ids."""
        recorded = []
        for change in changes:
            i = change.incident
            if change.kind == "opened":
                cursor = self.con.execute(
                    "INSERT INTO incidents (event, usecase, asset, rule, severity, owners, value, link, opened_at, "
                    "ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        i.ref,
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


@dataclass(frozen=True)
class PendingDelivery:
    id: int
    kind: str  # opened | resolved
    channel: str
    incident: Incident
    created_at: datetime


class Outbox:
    """Messages to deliver, one row per (incident transition, channel); and which channels are down."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def enqueue(self, incident_id: int, kind: str, channel: str, now: datetime) -> None:
        self.con.execute(
            "INSERT INTO deliveries (incident_id, kind, channel, created_at) VALUES (?, ?, ?, ?)",
            (incident_id, kind, channel, now.isoformat()),
        )

    def claim(self, now: datetime) -> list[PendingDelivery]:
        """Pending messages not claimed by another evaluation (or claimed by one that died), oldest first."""
        stale = (now - CLAIM_TIMEOUT).isoformat()
        rows = self.con.execute(
            f"SELECT d.id, d.kind, d.channel, d.created_at, {', '.join('i.' + c for c in COLUMNS.split(', '))} "
            "FROM deliveries d JOIN incidents i ON i.id = d.incident_id "
            "WHERE d.status = 'pending' AND (d.claimed_at IS NULL OR d.claimed_at < ?) ORDER BY d.id",
            (stale,),
        ).fetchall()
        self.con.executemany(
            "UPDATE deliveries SET claimed_at = ? WHERE id = ?", [(now.isoformat(), row[0]) for row in rows]
        )
        return [PendingDelivery(r[0], r[1], r[2], _incident(r[4:]), datetime.fromisoformat(r[3])) for r in rows]

    def finish(self, delivery_id: int, status: str, error: str | None, now: datetime) -> None:
        """`sent` or `expired` (done), or `pending` again with the error (tried again next time)."""
        done = now.isoformat() if status != "pending" else None
        self.con.execute(
            "UPDATE deliveries SET status = ?, tries = tries + 1, last_error = ?, claimed_at = NULL, done_at = ? "
            "WHERE id = ?",
            (status, error, done, delivery_id),
        )

    def finish_untried(self, delivery_id: int) -> None:
        self.con.execute("UPDATE deliveries SET claimed_at = NULL WHERE id = ?", (delivery_id,))

    def pending_count(self) -> int:
        return self.con.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchall()[0][0]

    def down_channels(self) -> dict[str, datetime]:
        rows = self.con.execute("SELECT name, down_since FROM channels WHERE down_since IS NOT NULL").fetchall()
        return {name: datetime.fromisoformat(since) for name, since in rows}

    def mark_channel(self, name: str, down_since: datetime | None, error: str | None) -> None:
        self.con.execute(
            "INSERT INTO channels (name, down_since, last_error) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
            "SET down_since = excluded.down_since, last_error = excluded.last_error",
            (name, down_since.isoformat() if down_since else None, error),
        )

    def statuses(self) -> list[tuple[str, str, str, int]]:
        """(channel, kind, status, tries) of every message, in order: what tests and `status` may look at."""
        return self.con.execute("SELECT channel, kind, status, tries FROM deliveries ORDER BY id").fetchall()


def _open_incidents(con: sqlite3.Connection) -> dict[IncidentKey, Incident]:
    rows = con.execute(f"SELECT {COLUMNS} FROM incidents WHERE resolved_at IS NULL ORDER BY id").fetchall()
    return {incident.key: incident for incident in map(_incident, rows)}
