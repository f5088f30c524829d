"""Gateway tables: tool catalog, agents, credential vault, idempotency, call log, drift alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from daytwo.store.base import Base, JSONType, UTCDateTime, utcnow

__all__ = [
    "GatewayAgent",
    "GatewayCall",
    "GatewayDriftAlert",
    "GatewayDriftProfile",
    "GatewayIdempotency",
    "GatewaySecret",
    "GatewayTool",
]


class GatewayTool(Base):
    """One version of one tool definition; (name, version) never changes its hash."""

    __tablename__ = "gateway_tools"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_gateway_tools_name_version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(64))
    major: Mapped[int] = mapped_column(Integer)
    capability: Mapped[str] = mapped_column(String(128), index=True)
    definition_hash: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GatewayAgent(Base):
    """An agent principal: hashed API key, the tenant it acts for and the tools it may call.

    Names are unique across tenants: agents are made on the host only, and the name is
    how in-process callers, the call log and ``agent-delete`` address an agent.
    """

    __tablename__ = "gateway_agents"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tools: Mapped[list[str]] = mapped_column(JSONType)
    rate_limit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tenant: Mapped[str] = mapped_column(String(100), default="default", server_default="default")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GatewaySecret(Base):
    """A credential encrypted with AES-GCM (the secret's name is the associated data)."""

    __tablename__ = "gateway_secrets"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GatewayIdempotency(Base):
    """The stored result of a call made with an idempotency key (exactly-once side effects)."""

    __tablename__ = "gateway_idempotency"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    tool: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    arguments_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GatewayCall(Base):
    """One tool call (written in batches by the telemetry), read by ``tools health``."""

    __tablename__ = "gateway_calls"
    __table_args__ = (Index("ix_gateway_calls_tool_created_at", "tool", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tool: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(128), nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cost_usd: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GatewayDriftAlert(Base):
    """A semantic-drift alert on one output field of one tool version."""

    __tablename__ = "gateway_drift_alerts"
    __table_args__ = (Index("ix_gateway_drift_alerts_tool_created_at", "tool", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tool: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(16))
    response_index: Mapped[int] = mapped_column(Integer)
    sample: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GatewayDriftProfile(Base):
    """The learned output profile of one tool version, shared by every gateway process."""

    __tablename__ = "gateway_drift_profiles"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    profiles: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
