"""FastAPI dependencies: the store, the settings and the calling principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from daytwo.exceptions import NotAuthenticated
from daytwo.server.auth import KeyStore, Principal, Role
from daytwo.server.events import note_key_use
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


def get_store(request: Request) -> Store:
    """The app's store."""
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_keys(request: Request) -> KeyStore:
    """The app's key store."""
    keys: KeyStore = request.app.state.keys
    return keys


def get_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_header)],
    session: Annotated[str | None, Security(_cookie)],
) -> Principal:
    """Who calls: from a bearer key, an X-API-Key header or a dashboard session cookie."""
    keys = get_keys(request)
    principal: Principal | None = None
    if bearer is not None and bearer.credentials:
        principal = keys.authenticate(bearer.credentials)
    elif api_key:
        principal = keys.authenticate(api_key)
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


def require(role: Role) -> Callable[[Principal], Principal]:
    """A dependency that returns the principal when its role is at least ``role``."""

    def check(principal: CurrentPrincipal) -> Principal:
        principal.require(role)
        return principal

    check.__name__ = f"require_{role}"
    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
