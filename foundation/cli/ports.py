"""A port taken by another process, found before a server command loads anything (models, Dagster, dbt docs)."""

from __future__ import annotations

import socket


def port_in_use(host: str, port: int) -> bool:
    """Whether binding `host:port` fails now, as the server's own bind would (SO_REUSEADDR, as uvicorn sets it)."""
    if port == 0:
        return False  # any free port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # the server reports an unknown host itself
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return True
    return False


def busy_port_message(host: str, port: int, setting: str) -> str:
    return (
        f"port {port} on {host} is already in use (another server, or an earlier run still up): "
        f"choose a free one with --port N{f', or set {setting} in foundation.yaml' if setting else ''}"
    )
