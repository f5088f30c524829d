"""Audit records of the server's admin and auth events, with the real principal.

Every record names the acting key (``<tenant>/key:<id prefix>`` as actor, the full key
id, tenant and role in the data), so an auditor can tell which key of which tenant
created a key, registered a tool or cancelled a run. Secrets never go in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from daytwo.server.auth import Principal
from daytwo.server.tenancy import principal_string

__all__ = ["audit_anonymous", "audit_event", "principal_data"]


def principal_data(principal: Principal) -> dict[str, str]:
    """Who acted: key id, tenant and role."""
    return {"key_id": principal.key_id, "tenant": principal.tenant, "role": principal.role}


def audit_event(
    request: Request,
    principal: Principal,
    kind: str,
    subject: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Append ``kind`` to the audit log, acted by ``principal``."""
    request.app.state.audit.append(
        kind=kind,
        actor=principal_string(principal),
        subject=subject,
        data={**principal_data(principal), **(data or {})},
    )


def audit_anonymous(
    request: Request, kind: str, subject: str | None = None, data: Mapping[str, Any] | None = None
) -> None:
    """Append ``kind`` for a caller with no valid key (a failed login)."""
    client = request.client.host if request.client else None
    request.app.state.audit.append(
        kind=kind, actor="anonymous", subject=subject, data={"client": client, **(data or {})}
    )
