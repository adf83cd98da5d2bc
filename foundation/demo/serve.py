"""`foundation demo serve`: the demo's local services, kept up outside `foundation demo`.

Three demo sources are not files: `maintenance` and `failures` come from the workshop REST API
(foundation/demo/workshop_api.py) and `depots` from the depot web page (foundation/demo/depot_page.py). `foundation
demo` starts both on 127.0.0.1 for the length of its ingestion. To ingest or run the demo use case at any other
time (`foundation ingest fleet_maintenance`, `foundation run`, `make run`), this serves them until Ctrl-C and prints
the variables the source YAML reads, or runs one command with them set and stops (`foundation demo serve --
foundation run`).
"""

from __future__ import annotations

import errno
import os
import shlex
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from foundation.demo import depot_page, workshop_api
from foundation.demo.fleet_data import FleetSize, generate_fleet_landing

# What the demo's source YAML reference (${...}), in the order they are printed.
SERVED_ENV = (workshop_api.URL_ENV, workshop_api.TOKEN_ENV, depot_page.URL_ENV)
SERVED_FILES = (*workshop_api.ENDPOINTS.values(), str(depot_page.PAGE_PATH))


class ServeError(RuntimeError):
    """The services cannot start (a port in use...); the message says the fix."""


@dataclass(frozen=True)
class DemoServices:
    api_url: str
    token: str
    depot_page_url: str

    def environment(self) -> dict[str, str]:
        return {
            workshop_api.URL_ENV: self.api_url,
            workshop_api.TOKEN_ENV: self.token,
            depot_page.URL_ENV: self.depot_page_url,
        }


def export_lines(environment: dict[str, str]) -> list[str]:
    """`export NAME=value` lines a POSIX shell can paste or eval (values quoted)."""
    return [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]


def missing_files(landing_root: Path) -> list[str]:
    """The files the services serve that the landing folder lacks (relative to it)."""
    return [relative for relative in SERVED_FILES if not (landing_root / relative).is_file()]


def ensure_landing(landing_root: Path, size: FleetSize) -> bool:
    """Generate the demo's landing files when a file the services serve is missing; True when generated.

    Existing files are left alone: they may come from a `foundation demo --trucks N` the user wants to keep.
    """
    if not missing_files(landing_root):
        return False
    generate_fleet_landing(landing_root, size)
    return True


@contextmanager
def _bound(what: str, port: int, option: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"cannot serve the {what} on 127.0.0.1:{port}: the port is in use; "
                f"choose another with {option}, or 0 for a free one"
            ) from None
        raise


@contextmanager
def demo_services(
    landing_root: Path, api_port: int = 0, page_port: int = 0, token: str | None = None
) -> Iterator[DemoServices]:
    """Both services over the landing files, with their variables set in this process's environment (and restored
    on exit); children started inside the block inherit them."""
    with ExitStack() as stack:
        with _bound("workshop API", api_port, "--api-port"):
            api = stack.enter_context(workshop_api.running_workshop_api(landing_root, port=api_port, token=token))
        with _bound("depot page", page_port, "--page-port"):
            page_url = stack.enter_context(depot_page.running_depot_page(landing_root, port=page_port))
        yield DemoServices(api_url=api.url, token=api.token, depot_page_url=page_url)


def token_from_environment() -> str | None:
    """Keep the token already exported (a restarted `serve` then matches what the shell holds), else None."""
    return os.environ.get(workshop_api.TOKEN_ENV) or None


def command_not_found(command: Sequence[str]) -> str:
    return f"cannot run {shlex.join(command)}: {command[0]!r} not found on PATH (try `uv run foundation ...`)"
