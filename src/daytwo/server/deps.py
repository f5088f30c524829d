"""FastAPI dependencies: the store, the settings and the calling principal.

They are ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, a
hand-off per dependency and request. Those here only read the app's state, and the
principal is found without I/O for a key this process verified recently (see
``auth.VERIFIED_TTL``); otherwise its lookup goes to the thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from daytwo.exceptions import NotAuthenticated
from daytwo.server.auth import KeyStore, Principal, Role
from daytwo.server.events import key_use_noted, note_key_use
from daytwo.settings import Settings
from daytwo.store import Store

__all__ = [
    "SESSION_COOKIE",
    "CurrentPrincipal",
    "get_keys",
    "get_principal",
    "get_settings",
    "get_store",
    "require",
]

SESSION_COOKIE = "daytwo_session"

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer dt_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="Dashboard session (log in at /login)."
)


async def get_store(request: Request) -> Store:
    """The app's store."""
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_keys(request: Request) -> KeyStore:
    """The app's key store."""
    keys: KeyStore = request.app.state.keys
    return keys


async def get_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_header)],
    session: Annotated[str | None, Security(_cookie)],
) -> Principal:
    """Who calls: from a bearer key, an X-API-Key header or a dashboard session cookie."""
    keys: KeyStore = request.app.state.keys
    key = bearer.credentials if bearer is not None and bearer.credentials else api_key
    if key:
        principal = keys.verified(key)
        if principal is not None and key_use_noted(principal):
            return principal
    return await run_in_threadpool(_principal, request, keys, key, session)


def _principal(request: Request, keys: KeyStore, key: str | None, session: str | None) -> Principal:
    principal: Principal | None = None
    if key:
        principal = keys.authenticate(key)
    elif session:
        principal = keys.session_principal(session)
    if principal is not None:
        note_key_use(request, principal)
        return principal
    raise NotAuthenticated(
        "no API key given",
        hint="send `Authorization: Bearer <key>` (create one with `daytwo keys create`)",
    )


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
"""The authenticated caller (any role)."""


def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that returns the principal when its role is at least ``role``."""

    async def check(principal: CurrentPrincipal) -> Principal:
        principal.require(role)
        return principal

    check.__name__ = f"require_{role}"
    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
