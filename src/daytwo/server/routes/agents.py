"""Agents: versions, register, promote, rollback.

Agent definitions are shared by every tenant of an instance (like a model or a
tool catalog): viewers read them, admins change them. Runs are per tenant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from daytwo.server.deps import Admin, Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.store import Store

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/agents", tags=["agents"], responses=ERROR_RESPONSES)

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
    version: int | str
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
    return [AgentVersionOut(**i.as_dict()) for i in _registry(store).list()]


@router.get("/{name}", response_model=list[AgentVersionOut], summary="Versions of one agent")
def agent_versions(name: Name, principal: Viewer, store: StoreDep) -> list[AgentVersionOut]:
    return [AgentVersionOut(**i.as_dict()) for i in _registry(store).list(name)]


@router.get("/{name}/versions/{version}", response_model=AgentDetail, summary="One version")
def agent_version(
    name: Name,
    version: Annotated[str, Path(min_length=1, max_length=64, description="Number or alias.")],
    principal: Viewer,
    store: StoreDep,
) -> AgentDetail:
    return AgentDetail(**_registry(store).show(name, version))


@router.post("", response_model=Registered, status_code=201, summary="Register a version")
def register(body: AgentRegister, principal: Admin, store: StoreDep) -> Registered:
    from daytwo.exceptions import InputError
    from daytwo.runtime import load_spec, parse_spec_text

    if (body.spec_yaml is None) == (body.spec is None):
        raise InputError("give exactly one of spec_yaml or spec", hint="send the agent spec once")
    spec = parse_spec_text(body.spec_yaml) if body.spec_yaml is not None else load_spec(body.spec)  # type: ignore[arg-type]
    info, created = _registry(store).register(spec, source=body.spec_yaml or "")
    return Registered(**info.as_dict(), created=created)


@router.post("/{name}/promote", response_model=AliasMove, summary="Point an alias at a version")
def promote(name: Name, body: Promote, principal: Admin, store: StoreDep) -> AliasMove:
    reg = _registry(store)
    before = None
    try:
        before = reg.resolve(name, body.alias)
    except Exception:
        before = None
    number = reg.promote(name, body.version, body.alias)
    return AliasMove(name=name, alias=body.alias, from_version=before, to_version=number)


@router.post("/{name}/rollback", response_model=AliasMove, summary="Move an alias back")
def rollback(
    name: Name, principal: Admin, store: StoreDep, body: Rollback | None = None
) -> AliasMove:
    body = body or Rollback()
    current, previous = _registry(store).rollback(name, body.alias)
    return AliasMove(name=name, alias=body.alias, from_version=current, to_version=previous)
