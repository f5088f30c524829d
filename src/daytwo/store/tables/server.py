"""Server tables: API keys (stored hashed), dashboard sessions, model routes and budgets.

A key belongs to one tenant and has one role (admin, operator, viewer). Only a
SHA-256 digest of the key's secret part is stored; the full key is shown once,
when it is created. Dashboard sessions live in the database too, so several
server workers behave as one service.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from daytwo.store.base import Base, JSONType, UTCDateTime, utcnow

__all__ = [
    "ApiKey",
    "DashboardSession",
    "Grant",
    "KeyUseDay",
    "ModelBudget",
    "ModelRoute",
    "Ownership",
    "RunSubject",
]


class ApiKey(Base):
    """An API key: public id, role, tenant and the digest of its secret."""

    __tablename__ = "server_api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    tenant: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_server_api_keys_tenant", "tenant"),)


class DashboardSession(Base):
    """A logged-in browser: the digest of its cookie token and the key it logged in with."""

    __tablename__ = "server_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_server_sessions_key_id", "key_id"),)


class Ownership(Base):
    """Which tenant owns a named object of another layer (a tool, a collection, an eval set).

    Objects created through the API are claimed by the caller's tenant; objects with no
    row here (created by the CLI or the quickstart) belong to tenant ``default``.
    """

    __tablename__ = "server_ownership"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_server_ownership_tenant", "tenant"),)


class ModelRoute(Base):
    """A tenant's model alias for the model gateway: an ordered fallback chain of profiles."""

    __tablename__ = "server_model_routes"

    tenant: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    targets: Mapped[list[str]] = mapped_column(JSONType)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelBudget(Base):
    """Daily model budgets and a rate limit of one tenant or one API key (gateway calls).

    ``scope`` is ``tenant`` (``subject`` = the tenant) or ``key`` (``subject`` = the
    key id); ``None`` means no limit of that kind.
    """

    __tablename__ = "server_model_budgets"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    usd_per_day: Mapped[float | None] = mapped_column(Float, nullable=True)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_server_model_budgets_tenant", "tenant"),)


class Grant(Base):
    """A named object shared with a tenant that does not own it (a sample tool, a public
    collection): read and referenced by the tenant's agents, never changed by it.

    Grants are made by a server operator from the CLI (``daytwo grants add``).
    """

    __tablename__ = "server_grants"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_server_grants_tenant", "tenant"),)


class KeyUseDay(Base):
    """A day on which a key was used: the first use per key per day is audited (``key.use``)."""

    __tablename__ = "server_key_use_days"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)


class RunSubject(Base):
    """The end user a run acts on behalf of (retrieval runs with their principal and groups)."""

    __tablename__ = "server_run_subjects"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal: Mapped[str] = mapped_column(String(200))
    groups: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
