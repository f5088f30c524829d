"""Audit records of what a server operator does on the host (keys, grants, credentials)."""

from __future__ import annotations

import getpass
from typing import Any

from daytwo.cli._context import state

__all__ = ["audit_operator"]


def audit_operator(kind: str, subject: str, data: dict[str, Any] | None = None) -> None:
    """Append ``kind`` acted by the operator's OS user (``operator:cli:<user>``)."""
    from daytwo.tracing.audit import AuditLog

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"
    AuditLog.for_data_dir(state.store(), state.settings().data_dir).append(
        kind=kind, actor=f"operator:cli:{user}", subject=subject, data=data or {}
    )
