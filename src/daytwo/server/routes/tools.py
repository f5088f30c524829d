"""Tools of the gateway: catalog, live health (p50/p99, error rate), drift alerts.

Tools registered through the API belong to the caller's tenant; tools registered
by the CLI belong to tenant ``default``. A tenant never sees another's tools, their
telemetry or their drift alerts.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from daytwo.exceptions import MissingDependency
from daytwo.server.deps import Admin, Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.events import audit_event
from daytwo.server.ownership import check_visible, claim, release, visible
from daytwo.store import Store

__all__ = ["get_gateway", "router", "tool_alerts", "tool_health"]

router = APIRouter(prefix="/api/v1/tools", tags=["tools"], responses=ERROR_RESPONSES)
KIND = "tool"

ToolName = Annotated[str, Path(min_length=1, max_length=128, description="Tool name.")]
StoreDep = Annotated[Store, Depends(get_store)]


def get_gateway(request: Request) -> Any:
    """The app's gateway (MissingDependency when the server runs without one)."""
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None:
        raise MissingDependency(
            "this server has no tool gateway", hint="start it with daytwo serve"
        )
    return gateway


async def _get_gateway(request: Request) -> Any:
    return get_gateway(request)  # async: no thread-pool hand-off for a read of the app's state


GatewayDep = Annotated[Any, Depends(_get_gateway)]


class ToolOut(BaseModel):
    """One tool version in the catalog."""

    name: str
    version: str
    capability: str
    backend: str
    drift_policy: str
    hash: str
    created_at: str


class ToolHealth(BaseModel):
    """Live figures of one tool over the window."""

    tool: str
    calls: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_rate: float
    cost_usd: float


class DriftAlertOut(BaseModel):
    id: str
    tool: str
    version: str
    field: str | None = None
    kind: str
    source: str | None = None
    detail: Any = None
    action: str | None = None
    response_index: int | None = None
    created_at: str


class ToolRegister(BaseModel):
    """A tool definition (the gateway's contract format) as a JSON object."""

    definition: dict[str, Any]


def _visible_names(store: Store, gateway: Any, tenant: str) -> list[str]:
    names = sorted({t.name for t in gateway.tools()})
    return visible(store, KIND, names, tenant)


@router.get("", response_model=list[ToolOut], summary="The tenant's tool catalog")
def catalog(principal: Viewer, store: StoreDep, gateway: GatewayDep) -> list[ToolOut]:
    names = set(_visible_names(store, gateway, principal.tenant))
    return [ToolOut(**t.as_dict()) for t in gateway.tools() if t.name in names]


def tool_health(store: Store, gateway: Any, tenant: str, window_s: float) -> list[ToolHealth]:
    """Health of the tenant's tools from the call log of every process."""
    from daytwo.gateway.telemetry import stats_from_db

    names = _visible_names(store, gateway, tenant)
    stats = stats_from_db(store, window_s=window_s)
    out = []
    for name in names:
        st = stats.get(name)
        if st is None:
            out.append(
                ToolHealth(
                    tool=name, calls=0, p50_ms=0, p95_ms=0, p99_ms=0, error_rate=0, cost_usd=0
                )
            )
        else:
            out.append(ToolHealth(tool=name, **st.as_dict()))
    return out


def tool_alerts(store: Store, gateway: Any, tenant: str, limit: int = 200) -> list[DriftAlertOut]:
    """Drift alerts of the tenant's tools, newest first."""
    names = set(_visible_names(store, gateway, tenant))
    return [DriftAlertOut(**a) for a in gateway.drift_alerts(limit=limit) if a["tool"] in names]


@router.get("/health", response_model=list[ToolHealth], summary="p50/p99, error rate, cost")
def health(
    principal: Viewer,
    store: StoreDep,
    gateway: GatewayDep,
    window_s: Annotated[float, Query(gt=0, le=30 * 86400)] = 3600.0,
) -> list[ToolHealth]:
    return tool_health(store, gateway, principal.tenant, window_s)


@router.get("/drift-alerts", response_model=list[DriftAlertOut], summary="Drift alert history")
def drift_alerts(
    principal: Viewer,
    store: StoreDep,
    gateway: GatewayDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[DriftAlertOut]:
    return tool_alerts(store, gateway, principal.tenant, limit)


@router.get("/{name}", response_model=list[ToolOut], summary="Versions of one tool")
def versions(
    name: ToolName, principal: Viewer, store: StoreDep, gateway: GatewayDep
) -> list[ToolOut]:
    check_visible(store, KIND, name, principal.tenant, "tool")
    return [ToolOut(**t.as_dict()) for t in gateway.catalog.versions(name)]


@router.post("", response_model=ToolOut, status_code=201, summary="Register a tool version")
def register(
    body: ToolRegister, principal: Admin, store: StoreDep, gateway: GatewayDep, request: Request
) -> ToolOut:
    from daytwo.exceptions import PermissionDenied
    from daytwo.gateway.authority import check_tenant_credentials, refuse_from_api
    from daytwo.gateway.contracts import parse_definitions

    definition = parse_definitions(body.definition, source="request body")[0]
    try:
        refuse_from_api(definition)
        check_tenant_credentials(definition, principal.tenant)
    except PermissionDenied as exc:
        audit_event(
            request,
            principal,
            "tool.register.denied",
            definition.name,
            {"reason": exc.message, "backend": definition.backend.type},
        )
        raise
    exists = any(t.name == definition.name for t in gateway.tools())
    new = claim(store, KIND, definition.name, principal.tenant, "tool", exists=exists)
    try:
        record = gateway.register(definition)
    except BaseException:
        if new:
            release(store, KIND, definition.name)
        raise
    audit_event(
        request,
        principal,
        "tool.register",
        record.name,
        {
            "version": record.version,
            "backend": definition.backend.type,
            "hash": record.definition_hash,
        },
    )
    return ToolOut(**record.as_dict())
