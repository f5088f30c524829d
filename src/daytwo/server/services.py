"""What the server needs from the layers below: the audit log, tracing and the runtime."""

from __future__ import annotations

import os
from typing import Any

from daytwo.settings import Settings
from daytwo.store import Store

__all__ = ["audit_log", "build_runtime", "start_tracing"]


def audit_log(settings: Settings, store: Store) -> Any:
    """The signed audit log of the store (key file in the data directory)."""
    from daytwo.tracing.audit import AuditLog

    return AuditLog.for_data_dir(store, settings.data_dir)


def start_tracing(settings: Settings, store: Store) -> None:
    """Store this process's spans in ``store`` (and export them to OTLP when set)."""
    from daytwo.tracing import setup_tracing

    setup_tracing(store, settings)


def build_runtime(settings: Settings, store: Store, audit: Any) -> Any:
    """The agent runtime of this server process (not launched yet).

    Each worker process gets its own DBOS executor id; with PostgreSQL every worker
    shares the runs through the same system database.
    """
    from daytwo.runtime import Runtime, Services

    services = Services(audit=audit)
    return Runtime(
        store,
        services,
        data_dir=settings.data_dir,
        executor_id=f"server-{os.getpid()}",
    )
