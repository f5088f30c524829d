"""How tenants are recorded on other layers' rows, and how queries are scoped to one tenant.

Runs, audit records and cost spans carry a *principal* string. The server writes it
as ``<tenant>/key:<key id prefix>``, so every layer's rows can be scoped to a tenant
without a cross-layer foreign key. Rows written outside the server (the CLI, the
quickstart) have no ``/`` and belong to tenant ``default``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from daytwo.server.auth import Principal

__all__ = ["DEFAULT_TENANT", "principal_string", "tenant_clause", "tenant_of"]

DEFAULT_TENANT = "default"


def principal_string(principal: Principal) -> str:
    """The principal as recorded on runs, spans and audit records."""
    return f"{principal.tenant}/key:{principal.key_id[:12]}"


def tenant_of(recorded: str | None) -> str:
    """The tenant a recorded principal string belongs to."""
    if not recorded or "/" not in recorded:
        return DEFAULT_TENANT
    return recorded.split("/", 1)[0]


def tenant_clause(column: Any, tenant: str) -> sa.ColumnElement[bool]:
    """SQL condition: the principal in ``column`` belongs to ``tenant``."""
    own = column.startswith(f"{tenant}/", autoescape=True)
    if tenant == DEFAULT_TENANT:
        return sa.or_(own, column.is_(None), ~column.contains("/", autoescape=True))
    return own  # type: ignore[no-any-return]
