"""Dependencies: settings, the served models, API keys (authentication) and per-model authorisation.

Keys come from `FOUNDATION_API_KEYS`: comma-separated entries, each `key` (every model) or `key:model_a+model_b`
(only those models). Clients send one as `X-API-Key: <key>` or `Authorization: Bearer <key>`. Keys are compared in
constant time against every configured key, and are never logged: logs name a key by a short hash (`key_id`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from serving.loaded_models import ServedModel

API_KEYS_ENV = "FOUNDATION_API_KEYS"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    secret: bytes
    models: frozenset[str] | None  # None: every model


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id (a hash prefix, safe to log) and the models it may use (None: all)."""

    key_id: str
    models: frozenset[str] | None

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


def key_id(secret: str) -> str:
    return "key-" + hashlib.sha256(secret.encode()).hexdigest()[:8]


def parse_api_keys(text: str | None) -> list[ApiKey]:
    """`key` or `key:model_a+model_b`, comma-separated. Errors name the entry by position, never by its key."""
    keys = []
    for position, entry in enumerate((text or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        secret, sep, scope = entry.partition(":")
        secret = secret.strip()
        models = frozenset(m.strip() for m in scope.split("+") if m.strip()) if sep else None
        if not secret:
            raise ValueError(f"{API_KEYS_ENV}: entry {position} has no key before ':'")
        if sep and not models:
            raise ValueError(f"{API_KEYS_ENV}: entry {position} has ':' but no model after it (key:model_a+model_b)")
        keys.append(ApiKey(key_id(secret), secret.encode(), models))
    return keys


def keys_from_environment() -> list[ApiKey]:
    return parse_api_keys(os.environ.get(API_KEYS_ENV))


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key sent as `X-API-Key` or `Authorization: Bearer` (`headers`: Starlette's, or any lower-case mapping)."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def match_key(keys: list[ApiKey], presented: str) -> ApiKey | None:
    """Constant-time comparison against every key (no early exit, so timing tells nothing about which matched)."""
    candidate = presented.encode()
    found = None
    for key in keys:
        if hmac.compare_digest(key.secret, candidate):
            found = key
    return found


def principal_of(state: Any, headers: Mapping[str, str]) -> Principal:
    """Who sends these headers; 401 without a valid key, unless the settings open the API (`api.open: true`).
    `state` is the app's state (settings, api_keys)."""
    if state.settings.api.open:
        return Principal("open", None)
    presented = presented_key(headers)
    challenge = {"WWW-Authenticate": "Bearer"}
    if presented is None:
        raise HTTPException(
            401, "missing API key: send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`", headers=challenge
        )
    key = match_key(state.api_keys, presented)
    if key is None:
        raise HTTPException(401, "invalid API key", headers=challenge)
    return Principal(key.key_id, key.models)


async def authenticate(request: Request) -> Principal:
    principal = principal_of(request.app.state, request.headers)
    if principal.key_id != "open":
        request.state.key_id = principal.key_id
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def served_models(state: Any) -> dict[str, ServedModel]:
    return state.models


def authorized_model(state: Any, principal: Principal, name: str) -> ServedModel:
    """403 when the key may not use the model (whether it exists or not: a limited key learns nothing of others),
    404 when no champion of that name is served, 503 before the models are loaded."""
    if not principal.may_use(name):
        raise HTTPException(403, f"this API key may not use the model {name!r}")
    models = served_models(state)
    if name not in models:
        if not state.ready:
            raise HTTPException(503, "the models are not loaded yet (see /health/ready)")
        known = sorted(m for m in models if principal.may_use(m))
        raise HTTPException(404, f"no served model named {name!r}; served: {', '.join(known) or 'none'}")
    return models[name]


async def model_for_key(request: Request, name: str, principal: CurrentPrincipal) -> ServedModel:
    return authorized_model(request.app.state, principal, name)


AuthorizedModel = Annotated[ServedModel, Depends(model_for_key)]
