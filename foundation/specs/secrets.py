"""Secrets come only from the environment, referenced in YAML as `${ENV_VAR}`.

`resolve` substitutes references at run time (never at parse time, so parsed specs hold no secret); its errors
name the variable, never a value. `literal_secrets` finds secret-looking keys whose value is not a reference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

ENV_REF_RE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
SECRET_KEY_RE = re.compile(r"(password|passwd|secret|token|api_?key|access_?key|credentials?|private_?key)$", re.I)


class MissingSecretError(KeyError):
    def __init__(self, variable: str, where: str) -> None:
        self.variable = variable
        message = f"environment variable {variable} is not set (referenced by {where}); export it before running"
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


def resolve(value: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """`value` with every `${VAR}` replaced from the environment."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise MissingSecretError(name, where)
        return env[name]

    return ENV_REF_RE.sub(substitute, value)


def literal_secrets(data: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Locations of secret-looking keys (token, password, api_key...) holding a literal instead of `${VAR}`."""
    if isinstance(data, dict):
        for key, value in data.items():
            here = (*loc, key)
            if isinstance(key, str) and SECRET_KEY_RE.search(key) and isinstance(value, str | int):
                if not ENV_REF_RE.fullmatch(str(value).strip()):
                    yield here
            else:
                yield from literal_secrets(value, here)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from literal_secrets(item, (*loc, i))


def references(data: Any) -> set[str]:
    """Names of every `${VAR}` referenced anywhere in a parsed YAML value."""
    if isinstance(data, str):
        return set(ENV_REF_RE.findall(data))
    if isinstance(data, dict):
        return set().union(set(), *(references(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(set(), *(references(v) for v in data))
    return set()
