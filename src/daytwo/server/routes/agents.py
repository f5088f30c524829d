"""Agents: versions, register, promote, rollback.

An agent belongs to the tenant that registered it over the API (agents registered
on the host belong to ``default``, and a server operator may grant them to other
tenants, read and run only). Another tenant's agent does not exist for a caller:
its versions, specs and aliases are a 404, and its name cannot be taken. A spec
may only name the tenant's own (or granted) tools and collections.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from daytwo.server.deps import Admin, Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.events import audit_event
from daytwo.server.ownership import check_owned, check_visible, claim, release, visible
from daytwo.store import Store

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/agents", tags=["agents"], responses=ERROR_RESPONSES)
KIND = "agent"

Name = Annotated[str, Path(min_length=1, max_length=128, description="Agent name.")]


class AgentVersionOut(BaseModel):
    """One registered version of an agent."""

    name: str
    version: int
    spec_hash: str
    created_at: datetime
    aliases: list[str]


class AgentDetail(AgentVersionOut):
    """A version with its spec."""

    spec: dict[str, Any]


class AgentRegister(BaseModel):
    """A spec, as YAML text or as a JSON object."""

    spec_yaml: str | None = Field(default=None, max_length=200_000)
    spec: dict[str, Any] | None = None


class Registered(AgentVersionOut):
    created: bool = Field(description="False when the same spec was registered before.")


class Promote(BaseModel):
    version: Annotated[int, Field(ge=1, le=2**31 - 1)] | str
    alias: str = Field(default="prod", min_length=1, max_length=64)


class Rollback(BaseModel):
    alias: str = Field(default="prod", min_length=1, max_length=64)


class AliasMove(BaseModel):
    name: str
    alias: str
    from_version: int | None
    to_version: int


def _registry(store: Store) -> Any:
    from daytwo.runtime.registry import AgentRegistry

    return AgentRegistry(store)


StoreDep = Annotated[Store, Depends(get_store)]


@router.get("", response_model=list[AgentVersionOut], summary="List agent versions")
def list_agents(principal: Viewer, store: StoreDep) -> list[AgentVersionOut]:
    infos = _registry(store).list()
    names = set(visible(store, KIND, {i.name for i in infos}, principal.tenant))
    return [AgentVersionOut(**i.as_dict()) for i in infos if i.name in names]


@router.get("/{name}", response_model=list[AgentVersionOut], summary="Versions of one agent")
def agent_versions(name: Name, principal: Viewer, store: StoreDep) -> list[AgentVersionOut]:
    check_visible(store, KIND, name, principal.tenant, "agent")
    return [AgentVersionOut(**i.as_dict()) for i in _registry(store).list(name)]


@router.get("/{name}/versions/{version}", response_model=AgentDetail, summary="One version")
def agent_version(
    name: Name,
    version: Annotated[str, Path(min_length=1, max_length=64, description="Number or alias.")],
    principal: Viewer,
    store: StoreDep,
) -> AgentDetail:
    check_visible(store, KIND, name, principal.tenant, "agent")
    return AgentDetail(**_registry(store).show(name, version))


@router.post("", response_model=Registered, status_code=201, summary="Register a version")
def register(
    body: AgentRegister, principal: Admin, store: StoreDep, request: Request
) -> Registered:
    from daytwo.exceptions import InputError
    from daytwo.models.profiles import load_profiles
    from daytwo.runtime import load_spec, parse_spec_text
    from daytwo.server.deps import get_settings
    from daytwo.server.scoping import check_spec_references

    if (body.spec_yaml is None) == (body.spec is None):
        raise InputError("give exactly one of spec_yaml or spec", hint="send the agent spec once")
    spec = parse_spec_text(body.spec_yaml) if body.spec_yaml is not None else load_spec(body.spec)  # type: ignore[arg-type]
    check_spec_references(
        store, spec, principal.tenant, load_profiles(get_settings(request)).names()
    )
    reg = _registry(store)
    exists = _exists(reg, spec.name)
    new = claim(store, KIND, spec.name, principal.tenant, "agent", exists=exists)
    try:
        info, created = reg.register(spec, source=body.spec_yaml or "")
    except BaseException:
        if new:
            release(store, KIND, spec.name)
        raise
    audit_event(
        request,
        principal,
        "agent.register",
        spec.name,
        {"version": info.version, "spec_hash": info.spec_hash, "created": created},
    )
    return Registered(**info.as_dict(), created=created)


def _exists(reg: Any, name: str) -> bool:
    from daytwo.exceptions import NotFoundError

    try:
        reg.resolve(name)
    except NotFoundError:
        return False
    return True


@router.post("/{name}/promote", response_model=AliasMove, summary="Point an alias at a version")
def promote(
    name: Name, body: Promote, principal: Admin, store: StoreDep, request: Request
) -> AliasMove:
    check_owned(store, KIND, name, principal.tenant, "agent")
    reg = _registry(store)
    before = None
    try:
        before = reg.resolve(name, body.alias)
    except Exception:
        before = None
    number = reg.promote(name, body.version, body.alias)
    audit_event(
        request,
        principal,
        "agent.promote",
        name,
        {"alias": body.alias, "from_version": before, "to_version": number},
    )
    return AliasMove(name=name, alias=body.alias, from_version=before, to_version=number)


@router.post("/{name}/rollback", response_model=AliasMove, summary="Move an alias back")
def rollback(
    name: Name, principal: Admin, store: StoreDep, request: Request, body: Rollback | None = None
) -> AliasMove:
    body = body or Rollback()
    check_owned(store, KIND, name, principal.tenant, "agent")
    current, previous = _registry(store).rollback(name, body.alias)
    audit_event(
        request,
        principal,
        "agent.rollback",
        name,
        {"alias": body.alias, "from_version": current, "to_version": previous},
    )
    return AliasMove(name=name, alias=body.alias, from_version=current, to_version=previous)
