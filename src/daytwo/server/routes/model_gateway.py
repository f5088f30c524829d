"""Managing the model gateway of a tenant: routes (aliases with fallback chains) and budgets.

Every object here belongs to the caller's tenant: routes are stored per tenant
(another tenant's route of the same name is a different route), budgets are the
tenant's own or those of its keys (a key of another tenant is 404, as if it did
not exist). Viewers read; admins change, and each change is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from daytwo.exceptions import NotFoundError
from daytwo.server.deps import Admin, Viewer
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.llm.limits import BudgetInfo
from daytwo.server.llm.routes_store import RouteInfo
from daytwo.server.llm.service import ModelGateway

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/models", tags=["model gateway"], responses=ERROR_RESPONSES)

RouteName = Annotated[
    str, Path(min_length=1, max_length=128, description="Route name (the model name to ask for).")
]
KeyId = Annotated[str, Path(min_length=1, max_length=32, description="API key id.")]


def _gw(request: Request) -> ModelGateway:
    gw: ModelGateway = request.app.state.model_gateway
    return gw


def _audit(request: Request, kind: str, actor: str, subject: str, data: dict[str, Any]) -> None:
    request.app.state.audit.append(kind, actor, subject=subject, data=data)


class RouteIn(BaseModel):
    """A route: the profiles to try, in order."""

    targets: list[str] = Field(min_length=1, max_length=8, description="Profile names, in order.")
    description: str = Field(default="", max_length=500)


class RouteOut(BaseModel):
    """One route of the tenant."""

    name: str
    targets: list[str]
    description: str
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, info: RouteInfo) -> RouteOut:
        return cls(
            name=info.name,
            targets=info.targets,
            description=info.description,
            created_at=info.created_at.isoformat(),
            updated_at=info.updated_at.isoformat(),
        )


class BudgetIn(BaseModel):
    """Daily budgets and a rate limit (leave a field out or null for no limit)."""

    usd_per_day: float | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0, le=2**63 - 1)
    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000_000)


class BudgetOut(BaseModel):
    """A budget with what was spent today (UTC)."""

    scope: str
    subject: str
    usd_per_day: float | None
    tokens_per_day: int | None
    requests_per_minute: int | None
    spent_usd: float
    spent_tokens: int

    @classmethod
    def of(cls, info: BudgetInfo) -> BudgetOut:
        return cls(
            scope=info.scope,
            subject=info.subject,
            usd_per_day=info.usd_per_day,
            tokens_per_day=info.tokens_per_day,
            requests_per_minute=info.requests_per_minute,
            spent_usd=info.spent_usd,
            spent_tokens=info.spent_tokens,
        )


@router.get("/routes", summary="The tenant's model routes")
def list_routes(request: Request, principal: Viewer) -> list[RouteOut]:
    """Routes of the caller's tenant, by name."""
    return [RouteOut.of(r) for r in _gw(request).routes.all(principal.tenant)]


@router.get("/routes/{name:path}", summary="One model route")
def get_route(request: Request, principal: Viewer, name: RouteName) -> RouteOut:
    """One route of the caller's tenant."""
    return RouteOut.of(_gw(request).routes.get(principal.tenant, name))


@router.put("/routes/{name:path}", summary="Create or replace a model route")
def put_route(request: Request, principal: Admin, name: RouteName, body: RouteIn) -> RouteOut:
    """Create or replace a route of the caller's tenant (targets are chat profiles)."""
    info = _gw(request).routes.set(principal.tenant, name, body.targets, body.description)
    _audit(request, "model_route.set", principal.label, name, {"targets": body.targets})
    return RouteOut.of(info)


@router.delete("/routes/{name:path}", status_code=204, summary="Delete a model route")
def delete_route(request: Request, principal: Admin, name: RouteName) -> None:
    """Delete a route of the caller's tenant."""
    _gw(request).routes.delete(principal.tenant, name)
    _audit(request, "model_route.delete", principal.label, name, {})


@router.get("/budgets", summary="The tenant's model budgets and today's spending")
def list_budgets(request: Request, principal: Viewer) -> list[BudgetOut]:
    """The tenant's own budget and its keys' budgets, with what each spent today."""
    return [BudgetOut.of(b) for b in _gw(request).limits.all(principal.tenant)]


@router.put("/budgets/tenant", summary="Set the tenant's model budget")
def put_tenant_budget(request: Request, principal: Admin, body: BudgetIn) -> BudgetOut:
    """Daily USD/token budgets and a rate limit for every gateway call of the tenant."""
    info = _gw(request).limits.set(
        "tenant", principal.tenant, tenant=principal.tenant, **body.model_dump()
    )
    _audit(
        request,
        "model_budget.set",
        principal.label,
        f"tenant:{principal.tenant}",
        body.model_dump(),
    )
    return BudgetOut.of(info)


@router.put("/budgets/keys/{key_id}", summary="Set one API key's model budget")
def put_key_budget(request: Request, principal: Admin, key_id: KeyId, body: BudgetIn) -> BudgetOut:
    """Daily USD/token budgets and a rate limit for the gateway calls of one key."""
    gw = _gw(request)
    _own_key(gw, principal.tenant, key_id)
    info = gw.limits.set("key", key_id, tenant=principal.tenant, **body.model_dump())
    _audit(request, "model_budget.set", principal.label, f"key:{key_id}", body.model_dump())
    return BudgetOut.of(info)


@router.delete("/budgets/tenant", status_code=204, summary="Remove the tenant's model budget")
def delete_tenant_budget(request: Request, principal: Admin) -> None:
    """No budget or rate limit for the tenant any more."""
    if not _gw(request).limits.delete("tenant", principal.tenant, tenant=principal.tenant):
        raise NotFoundError("the tenant has no model budget", hint="set one first")
    _audit(request, "model_budget.delete", principal.label, f"tenant:{principal.tenant}", {})


@router.delete("/budgets/keys/{key_id}", status_code=204, summary="Remove a key's model budget")
def delete_key_budget(request: Request, principal: Admin, key_id: KeyId) -> None:
    """No budget or rate limit for that key any more."""
    gw = _gw(request)
    _own_key(gw, principal.tenant, key_id)
    if not gw.limits.delete("key", key_id, tenant=principal.tenant):
        raise NotFoundError(f"key {key_id!r} has no model budget", hint="set one first")
    _audit(request, "model_budget.delete", principal.label, f"key:{key_id}", {})


def _own_key(gw: ModelGateway, tenant: str, key_id: str) -> None:
    if not any(k.id == key_id for k in gw.keys.list(tenant=tenant)):
        raise NotFoundError(f"no API key {key_id!r}", hint="list the keys with GET /api/v1/keys")
