"""Alerts: what breaks becomes an incident, and each incident tells its owners once when it opens and once when
it recovers (docs/operations.md#alerts).

Pure parts: `incidents` (observation -> incident transition), `routing` (transition -> channels), `messages`
(transition -> text, JSON, Slack payload). I/O at the edges: `store` (incident state, a SQLite file under the state
folder), `channels` (HTTP, SMTP, with retries), `service` (one pass: observe -> transition -> store -> send).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from foundation.core.workspace import Workspace


def open_incidents(workspace: Workspace) -> list[dict[str, Any]]:
    """The workspace's open incidents, oldest first, as JSON-ready dicts (for `foundation status`)."""
    from foundation.engine.notifications.store import IncidentStore  # lazy: the package name stays import-free

    store = IncidentStore.of_workspace(workspace)
    return [incident.to_dict() for incident in sorted(store.open().values(), key=lambda i: i.opened_at)]
