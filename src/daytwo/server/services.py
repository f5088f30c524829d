"""What the server needs from the layers below: the audit log, tracing and the runtime."""

from __future__ import annotations

import os
from typing import Any

from daytwo.settings import Settings
from daytwo.store import Store

__all__ = ["audit_log", "build_gateway", "build_kb", "build_runtime", "mcp_app", "start_tracing"]


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
    from daytwo.tracing import setup_tracing

    prices: Any = None
    try:
        from daytwo.models.profiles import PriceBook, load_profiles

        prices = PriceBook(load_profiles(settings))
    except ImportError:  # pragma: no cover - the models layer is part of daytwo
        prices = None
    setup_tracing(store, settings, prices=prices)


def build_gateway(settings: Settings, store: Store) -> Any:
    """The tool gateway of this server process."""
    from daytwo.gateway import Gateway
    from daytwo.server.ownership import claimant

    # A tool a tenant registered over the API never runs a code backend (even a row
    # written before that rule existed) and reads only its tenant's credentials.
    return Gateway(store, settings, registered_by=lambda name: claimant(store, "tool", name))


def build_kb(settings: Settings, store: Store) -> Any:
    """The knowledge base of this server process (embedders load on first use)."""
    from daytwo.knowledge.service import KnowledgeBase

    return KnowledgeBase(store, settings.data_dir, settings.embedder)


def mcp_app(gateway: Any) -> Any:
    """The gateway's MCP Streamable HTTP app (agent keys as Bearer tokens), or None."""
    try:
        from daytwo.gateway.mcp_server import mcp_asgi_app
    except ImportError:  # pragma: no cover - the gateway ships it
        return None
    return mcp_asgi_app(gateway, path="/")


def build_runtime(
    settings: Settings, store: Store, audit: Any, gateway: Any = None, kb: Any = None
) -> Any:
    """The agent runtime of this server process (not launched yet), over the real layers.

    Tools and telemetry come from ``gateway``, retrieval from ``kb``, model calls from
    the models layer (``settings.default_model``), audit records go to ``audit``. Each
    worker process gets its own DBOS executor id; with PostgreSQL every worker shares
    the runs through the same system database.
    """
    from daytwo.runtime import Runtime, Services

    services = Services(audit=audit)
    try:
        from daytwo.runtime import adapters
    except ImportError:  # pragma: no cover - the runtime ships its adapters
        adapters = None  # type: ignore[assignment]
    if adapters is not None:
        if gateway is not None:
            services.tools = adapters.GatewayTools(gateway)
            services.telemetry = adapters.GatewayTelemetry(gateway)
            services.extra["gateway"] = gateway
        if kb is not None:
            services.retriever = adapters.KnowledgeRetriever(kb)
            services.extra["kb"] = kb
        try:
            from daytwo.models import get_model

            profile = settings.default_model
            services.llm = adapters.ModelLLM(factory=lambda: get_model(profile, settings))
        except ImportError:  # pragma: no cover - the models layer is part of daytwo
            pass
    from daytwo.server.scoping import scope_services

    return Runtime(
        store,
        scope_services(services, store),
        data_dir=settings.data_dir,
        executor_id=f"server-{os.getpid()}",
    )
