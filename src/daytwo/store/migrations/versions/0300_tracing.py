"""tracing: spans, decision records, hash-chained audit log, signed checkpoints

Revision ID: 0300_tracing
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType, UTCDateTime

revision = "0300_tracing"
down_revision = "0001_core"
branch_labels = ("tracing",)
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "trace_spans",
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("parent_span_id", sa.String(16), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(128), nullable=True),
        sa.Column("start_time", UTCDateTime(), nullable=False),
        sa.Column("end_time", UTCDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("attributes", JSONType, nullable=False),
        sa.Column("operation", sa.String(32), nullable=True),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("session_id", sa.String(128), nullable=True),
        sa.Column("agent", sa.String(255), nullable=True),
        sa.Column("principal", sa.String(255), nullable=True),
        sa.Column("tenant", sa.String(255), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.String(48), nullable=True),
        sa.Column("cost_status", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("span_id", name=op.f("pk_trace_spans")),
    )
    op.create_index("ix_trace_spans_trace_id", "trace_spans", ["trace_id"])
    op.create_index("ix_trace_spans_run_id", "trace_spans", ["run_id"])
    op.create_index("ix_trace_spans_start_time", "trace_spans", ["start_time"])

    op.create_table(
        "trace_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_decisions")),
    )
    op.create_index("ix_trace_decisions_span_id", "trace_decisions", ["span_id"])
    op.create_index("ix_trace_decisions_trace_id", "trace_decisions", ["trace_id"])

    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_records")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_records_id")),
    )
    op.create_index("ix_audit_records_run_id", "audit_records", ["run_id"])

    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])

    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("prev_seq", sa.BigInteger(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_records_run_id", table_name="audit_records")
    op.drop_table("audit_records")
    op.drop_index("ix_trace_decisions_trace_id", table_name="trace_decisions")
    op.drop_index("ix_trace_decisions_span_id", table_name="trace_decisions")
    op.drop_table("trace_decisions")
    op.drop_index("ix_trace_spans_start_time", table_name="trace_spans")
    op.drop_index("ix_trace_spans_run_id", table_name="trace_spans")
    op.drop_index("ix_trace_spans_trace_id", table_name="trace_spans")
    op.drop_table("trace_spans")
