"""Refuse to start a command whose profile points at a server that cannot be reached (`foundation ingest`, `run`,
`serve`): one error naming the setting and the fix, instead of a storage client's retries and the bucket's name.

The probe is doctor's (`foundation.platform.doctor.unreachable_settings`): a TCP connect to the object store's
endpoint, Dagster's PostgreSQL and MLflow's tracking server, when the profile names them; nothing locally."""

from __future__ import annotations

from foundation.cli.output import EXIT_PROBLEMS, fail
from foundation.core.workspace import Workspace
from foundation.platform.doctor import unreachable_settings


def require_reachable(workspace: Workspace, command: str, json_output: bool) -> None:
    """Stop `command` (exit 1, or the --json envelope) when a server the profile names does not answer."""
    failed = unreachable_settings(workspace)
    if failed:
        message = "; ".join(f"{probe.detail}: {probe.fix}" for probe in failed)
        fail(command, message, json_output, EXIT_PROBLEMS)
