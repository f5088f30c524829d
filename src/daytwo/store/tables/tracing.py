"""Tracing tables: stored spans, decision records, the hash-chained audit log and its checkpoints.

Spans and decisions expire with the trace TTL; audit records and checkpoints never do
(they outlive the traces they mention). Ids of other layers are plain strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from daytwo.store.base import Base, JSONType, UTCDateTime

__all__ = [
    "AuditCheckpointRow",
    "AuditHeadRow",
    "AuditRecordRow",
    "DecisionRow",
    "ScoreRow",
    "SpanRow",
]


class SpanRow(Base):
    """One finished OpenTelemetry span, with the attributes the ledger and queries use."""

    __tablename__ = "trace_spans"
    __table_args__ = (
        # A trace's spans, and (run_id IS NOT NULL) its runs: one index (0350).
        Index("ix_trace_spans_trace_id_run", "trace_id", "run_id"),
        Index("ix_trace_spans_run_id", "run_id"),
        Index("ix_trace_spans_start_time", "start_time"),
        # Model and tool spans carry no run id: the explorer reaches runs by their trace.
        Index(
            "ix_trace_spans_model_trace",
            "model",
            "trace_id",
            sqlite_where=text("model IS NOT NULL"),
            postgresql_where=text("model IS NOT NULL"),
        ),
        Index(
            "ix_trace_spans_tool_trace",
            "name",
            "trace_id",
            sqlite_where=text("operation = 'execute_tool'"),
            postgresql_where=text("operation = 'execute_tool'"),
        ),
    )

    span_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(32))
    parent_span_id: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str | None] = mapped_column(String(128))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8))
    status_message: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    operation: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(128))
    agent: Mapped[str | None] = mapped_column(String(255))
    principal: Mapped[str | None] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(255))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    # Exact decimal text (USD); NULL on spans that carry no cost (wrappers).
    cost_usd: Mapped[str | None] = mapped_column(String(48))
    # "priced", "unknown" (no price for the model at that time), "wrapper" (a model-call
    # span with another model-call span inside: counted there) or NULL (not a cost span).
    cost_status: Mapped[str | None] = mapped_column(String(16))


class DecisionRow(Base):
    """A structured decision record (``daytwo.decision`` span event), linked to its span."""

    __tablename__ = "trace_decisions"
    __table_args__ = (
        Index("ix_trace_decisions_span_id", "span_id"),
        Index("ix_trace_decisions_trace_id", "trace_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trace_id: Mapped[str] = mapped_column(String(32))
    span_id: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)


class AuditRecordRow(Base):
    """One append-only audit record, hash-chained to the one before it."""

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_run_id", "run_id"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The single row holding the chain head; updating it serialises concurrent appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpointRow(Base):
    """An Ed25519 signature over the chain head at ``seq`` (and the previous checkpoint)."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    prev_seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    # First 16 hex of each record hash in (prev_seq, seq], signed (NULL: version-1 checkpoint).
    marks: Mapped[str | None] = mapped_column(Text)


class ScoreRow(Base):
    """A score of a trace: user feedback or a label (``daytwo.sdk.score``), per tenant."""

    __tablename__ = "trace_scores"
    __table_args__ = (Index("ix_trace_scores_trace_id", "trace_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    # A number (booleans as 0/1) or a category label; exactly one is set.
    value_num: Mapped[float | None] = mapped_column(Float)
    value_text: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)
    principal: Mapped[str] = mapped_column(String(255))
    tenant: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
