"""What the server needs from the layers below: the audit log, tracing and the runtime."""

from __future__ import annotations

import os
from typing import Any

from daytwo.settings import Settings
from daytwo.store import Store

__all__ = ["audit_log", "build_gateway", "build_kb", "build_runtime", "mcp_app", "start_tracing"]


def audit_log(settings: Settings, store: Store) -> Any:
    """The signed audit log of the store (key file in the data directory)."""
    from daytwo.tracing.audit import AuditLog

    return AuditLog.for_data_dir(store, settings.data_dir)


def start_tracing(settings: Settings, store: Store) -> None:
    """Store this process's spans in ``store`` (and export them to OTLP when set)."""
    from daytwo.tracing import setup_tracing

    setup_tracing(store, settings)


def build_gateway(settings: Settings, store: Store) -> Any:
    """The tool gateway of this server process."""
    from daytwo.gateway import Gateway

    return Gateway(store, settings)


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


def build_runtime(settings: Settings, store: Store, audit: Any, gateway: Any = None) -> Any:
    """The agent runtime of this server process (not launched yet).

    Each worker process gets its own DBOS executor id; with PostgreSQL every worker
    shares the runs through the same system database.
    """
    from daytwo.runtime import Runtime, Services

    services = Services(audit=audit)
    if gateway is not None:
        adapters = _runtime_adapters()
        if adapters is not None:
            services = adapters(gateway=gateway, audit=audit, settings=settings, store=store)
    return Runtime(
        store,
        services,
        data_dir=settings.data_dir,
        executor_id=f"server-{os.getpid()}",
    )


def _runtime_adapters() -> Any:
    """The runtime layer's binding of the other layers, when it ships one."""
    try:
        from daytwo.runtime import adapters  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(adapters, "build_services", None)
