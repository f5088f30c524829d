"""Audit records of the server's admin and auth events, with the real principal.

Every record names the acting key (``<tenant>/key:<id prefix>`` as actor, the full key
id, tenant and role in the data), so an auditor can tell which key of which tenant
created a key, registered a tool or cancelled a run. Secrets never go in.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from fastapi import Request

from daytwo.exceptions import DatabaseLocked
from daytwo.server.auth import Principal
from daytwo.server.tenancy import principal_string

__all__ = [
    "audit_anonymous",
    "audit_event",
    "key_use_noted",
    "note_key_use",
    "principal_data",
    "record_key_use",
]


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


_seen: dict[str, str] = {}
_seen_lock = threading.Lock()


def key_use_noted(principal: Principal) -> bool:
    """True when this process already recorded the key's use today (no I/O)."""
    from daytwo.store.base import utcnow

    return _seen.get(principal.key_id) == utcnow().date().isoformat()


def note_key_use(request: Request, principal: Principal) -> None:
    """Audit ``key.use`` on the first use of a key each (UTC) day (see :func:`record_key_use`)."""
    record_key_use(request.app.state.store, request.app.state.audit, principal)


def record_key_use(store: Any, audit: Any, principal: Principal) -> None:
    """Audit ``key.use`` on the first use of a key each (UTC) day, across every worker.

    One row per key and day decides who records it (the insert that wins); a
    process remembers the keys it saw today, so later requests cost no write.
    """
    from daytwo.store.base import utcnow
    from daytwo.store.tables.server import KeyUseDay

    day = utcnow().date().isoformat()
    with _seen_lock:
        if _seen.get(principal.key_id) == day:
            return
        _seen[principal.key_id] = day
    try:
        with store.session(write=True) as s:
            s.add(KeyUseDay(key_id=principal.key_id, day=day))
    except sa.exc.IntegrityError:
        return  # another worker (or an earlier process) recorded today's first use
    except DatabaseLocked:
        with _seen_lock:  # not recorded: a later request of this key tries again
            _seen.pop(principal.key_id, None)
        return
    audit.append(
        kind="key.use",
        actor=principal_string(principal),
        subject=principal.key_id,
        data={**principal_data(principal), "day": day},
    )
