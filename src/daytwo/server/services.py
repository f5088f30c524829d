"""What the server needs from the layers below: the audit log, tracing and the runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daytwo.settings import Settings
from daytwo.store import Store

__all__ = [
    "audit_log",
    "build_gateway",
    "build_kb",
    "build_runtime",
    "key_principals",
    "mcp_app",
    "scope_gateway",
    "start_tracing",
    "tool_visibility",
]


def audit_log(settings: Settings, store: Store) -> Any:
    """The signed audit log of the store (key file in the data directory, settings' cadence)."""
    from daytwo.tracing.audit import AuditLog, configure_audit

    configure_audit(settings)
    return AuditLog(store)


def start_tracing(settings: Settings, store: Store) -> None:
    """Store this process's spans in ``store`` (and export to OTLP when set), priced as stored.

    Model calls are priced from the models layer's profiles (a model without a known
    price stays ``cost_unknown``, never $0).
    """
    from daytwo.models.profiles import PriceBook, load_profiles
    from daytwo.tracing import setup_tracing

    setup_tracing(store, settings, prices=PriceBook(load_profiles(settings)))


def tool_visibility(store: Store) -> Callable[[str, list[str]], list[str]]:
    """The tools a tenant may see (owned or granted), as the gateway's ``visible_to``."""
    from daytwo.server.ownership import visible

    def visible_tools(tenant: str, names: list[str]) -> list[str]:
        return visible(store, "tool", names, tenant)

    return visible_tools


def key_principals(store: Store, audit: Any) -> Callable[[str], Any]:
    """Tenant API keys as gateway principals (the MCP endpoint), as its ``principals``.

    A key acts for its tenant only (the gateway's ``visible_to`` scopes it, its patterns
    allow every tool the tenant sees): operators and admins list and call, viewers
    list only (reading is what a viewer does everywhere else). Its first use each day is
    audited (``key.use``) and its denials are audited by the gateway with the key as
    actor (``<tenant>/key:<id prefix>``), like every other use of a key.
    """
    from daytwo.gateway.agents import Agent
    from daytwo.server.auth import KeyStore, is_api_key, role_at_least
    from daytwo.server.events import record_key_use
    from daytwo.server.tenancy import principal_string

    keys = KeyStore(store)

    def principal(key: str) -> Agent | None:
        if not is_api_key(key):
            return None
        p = keys.authenticate(key)
        record_key_use(store, audit, p)
        return Agent(
            name=f"key:{p.key_id[:12]}",
            tools=("*",),
            tenant=p.tenant,
            may_invoke=role_at_least(p.role, "operator"),
            principal=principal_string(p),
        )

    return principal


def scope_gateway(gateway: Any, store: Store, audit: Any) -> Any:
    """``gateway`` with the server's tenancy rules (those it was not given already).

    A tool a tenant registered over the API never runs a code backend (even a row
    written before that rule existed) and reads only its tenant's credentials; a key
    (an agent key or a tenant API key) sees and calls only its tenant's tools.
    """
    from daytwo.server.ownership import claimant

    if getattr(gateway, "registered_by", None) is None:
        gateway.registered_by = lambda name: claimant(store, "tool", name)
    if getattr(gateway, "visible_to", None) is None:
        gateway.visible_to = tool_visibility(store)
    if getattr(gateway, "principals", None) is None:
        gateway.principals = key_principals(store, audit)
    return gateway


def build_gateway(settings: Settings, store: Store, audit: Any = None) -> Any:
    """The tool gateway of this server process, scoped by :func:`scope_gateway`."""
    from daytwo.gateway import Gateway

    audit = audit if audit is not None else audit_log(settings, store)
    return scope_gateway(Gateway(store, settings), store, audit)


def build_kb(settings: Settings, store: Store) -> Any:
    """The knowledge base of this server process (embedders load on first use)."""
    from daytwo.knowledge.service import KnowledgeBase

    return KnowledgeBase(store, settings.data_dir, settings.embedder, rerankers=settings.rerankers)


def mcp_app(gateway: Any) -> Any:
    """The gateway's MCP Streamable HTTP app (agent or tenant API keys as Bearer)."""
    from daytwo.gateway.mcp_server import mcp_asgi_app

    return mcp_asgi_app(gateway, path="/")


def build_runtime(
    settings: Settings, store: Store, audit: Any, gateway: Any = None, kb: Any = None
) -> Any:
    """The agent runtime of this server process (not launched yet), over the real layers.

    Tools and telemetry come from ``gateway``, retrieval from ``kb``, model calls from
    the models layer (``settings.default_model``), audit records go to ``audit``. Each
    worker process holds its own executor slot and lease; with PostgreSQL every worker
    shares the runs through the same system database, and a live worker takes over the
    runs of one that stopped (``daytwo.runtime.executors``).

    With ``settings.serve_runs == "enqueue"`` the runtime is enqueue-only: runs are
    queued for ``daytwo runs worker`` processes and never execute here.
    """
    from daytwo.runtime import Runtime
    from daytwo.runtime.adapters import layer_services

    services = layer_services(settings, gateway=gateway, kb=kb, audit=audit)
    from daytwo.server.scoping import scope_services

    return Runtime(
        store,
        scope_services(services, store),
        data_dir=settings.data_dir,
        # A stable slot (<host>-<n>, or DAYTWO_EXECUTOR_ID): a worker that uvicorn
        # replaces after a crash takes its predecessor's slot and resumes its runs.
        executor_id=settings.executor_id,
        lease_s=settings.executor_lease_s,
        enqueue_only=settings.serve_runs == "enqueue",
        dbos_schema=settings.dbos_schema,
    )
