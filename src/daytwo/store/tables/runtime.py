"""Runtime tables: agent versions, their promotions (aliases), and runs.

Step checkpoints live in the DBOS system database (one record per completed
step); these tables keep what people and other layers query: which agent
version a run used, its status, its partial results and its decisions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from daytwo.store.base import Base, JSONType, UTCDateTime, utcnow

__all__ = ["AgentPromotion", "AgentVersion", "RunRecord", "RuntimeExecutor"]


class AgentVersion(Base):
    """One immutable version of an agent spec (versions count up per name)."""

    __tablename__ = "runtime_agent_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_runtime_agent_versions_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    spec_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AgentPromotion(Base):
    """Append-only history of alias moves (``prod`` → version); the latest row wins."""

    __tablename__ = "runtime_agent_promotions"
    __table_args__ = (Index("ix_runtime_agent_promotions_name_alias", "name", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RunRecord(Base):
    """One agent run (its id is the DBOS workflow id) with the exact version it ran."""

    __tablename__ = "runtime_runs"
    __table_args__ = (
        Index("ix_runtime_runs_created_at", "created_at", "id"),
        Index("ix_runtime_runs_session", "session_id", "created_at"),
        Index("ix_runtime_runs_user", "user_id", "created_at"),
        # The explorer's sort by latency (server/explorer_query.py).
        Index("ix_runtime_runs_latency", "latency_ms", "id"),
        # The overview's health aggregates read only these columns (server/health.py).
        Index(
            "ix_runtime_runs_health",
            "created_at",
            "principal",
            "agent_name",
            "agent_version",
            "status",
            "latency_bucket",
            "cost_usd",
            "tokens",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_name: Mapped[str] = mapped_column(String(128), index=True)
    agent_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    decisions: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    principal: Mapped[str] = mapped_column(String(128), default="")
    forked_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set with finished_at by the one writer of a run's end (runtime/records.end_run):
    # finished_at - created_at in ms, and its log-scaled histogram bucket
    # (runtime/records.latency_bucket). None while the run is open.
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_bucket: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The conversation the run belongs to and the end user it served (either may be
    # unknown): the trace explorer strings a session's or a user's runs together.
    session_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class RuntimeExecutor(Base):
    """A process that executes runs (a server worker, a CLI worker) and its lease.

    A live process renews ``heartbeat_at`` well within the lease; when it stops
    renewing (``kill -9``, a lost host), any other live process takes over its
    pending runs. ``stopped_at`` is set on a clean shutdown, freeing the slot at once.
    """

    __tablename__ = "runtime_executors"

    executor_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
