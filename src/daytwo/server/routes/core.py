"""Health, the caller's identity, and API-key administration."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from daytwo._version import __version__
from daytwo.exceptions import DaytwoError
from daytwo.server.auth import KeyInfo, KeyStore, Role
from daytwo.server.deps import Admin, CurrentPrincipal, get_keys, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.events import audit_event
from daytwo.store import Store

__all__ = ["api", "public"]

public = APIRouter(tags=["health"])
api = APIRouter(prefix="/api/v1", tags=["keys"], responses=ERROR_RESPONSES)


class Health(BaseModel):
    """Liveness and readiness of this server process."""

    status: str = Field(description="`ok` when the database answers and its schema is current.")
    version: str
    database: str = Field(description="`ok`, or why the database cannot be used.")


@public.get(
    "/health",
    response_model=Health,
    summary="Liveness and database readiness",
    responses={503: {"model": Health, "description": "The database cannot be used"}},
)
def health(store: Annotated[Store, Depends(get_store)], response: Response) -> Health:
    try:
        store.ping()
        store.check_schema()
        db = "ok"
    except DaytwoError as exc:
        db = str(exc)
    if db != "ok":
        response.status_code = 503  # load balancers take the worker out of rotation
    return Health(status="ok" if db == "ok" else "degraded", version=__version__, database=db)


class Me(BaseModel):
    """The calling principal."""

    key_id: str
    name: str
    tenant: str
    role: Role


@api.get("/me", response_model=Me, summary="Who am I", tags=["auth"])
def me(principal: CurrentPrincipal) -> Me:
    return Me(
        key_id=principal.key_id, name=principal.name, tenant=principal.tenant, role=principal.role
    )


class KeyOut(BaseModel):
    """An API key as listed (never its secret)."""

    id: str
    name: str
    tenant: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, info: KeyInfo) -> KeyOut:
        return cls(**info.__dict__)


class KeyCreate(BaseModel):
    """A new key in the caller's tenant."""

    role: Role = "viewer"
    name: str = Field(default="", max_length=200)


class KeyCreated(KeyOut):
    """The new key; ``key`` is shown only in this answer."""

    key: str


KeyId = Annotated[str, Path(min_length=1, max_length=64, description="The key's public id.")]


@api.get("/keys", response_model=list[KeyOut], summary="List the tenant's keys")
def list_keys(principal: Admin, keys: Annotated[KeyStore, Depends(get_keys)]) -> list[KeyOut]:
    return [KeyOut.of(k) for k in keys.list(tenant=principal.tenant)]


@api.post("/keys", response_model=KeyCreated, status_code=201, summary="Create a key")
def create_key(
    body: KeyCreate,
    principal: Admin,
    keys: Annotated[KeyStore, Depends(get_keys)],
    request: Request,
) -> KeyCreated:
    info, key = keys.create(role=body.role, tenant=principal.tenant, name=body.name)
    audit_event(request, principal, "key.create", info.id, {"new_role": info.role})
    return KeyCreated(**KeyOut.of(info).model_dump(), key=key)


@api.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke a key")
def revoke_key(
    key_id: KeyId,
    principal: Admin,
    keys: Annotated[KeyStore, Depends(get_keys)],
    request: Request,
) -> KeyOut:
    info = keys.revoke(key_id, tenant=principal.tenant)
    audit_event(request, principal, "key.revoke", info.id, {"revoked_role": info.role})
    return KeyOut.of(info)
