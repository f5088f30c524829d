"""tracing: scores of traces (user feedback and labels)

Revision ID: 0320_tracing_scores
Revises: 0300_tracing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import UTCDateTime

revision = "0320_tracing_scores"
down_revision = "0300_tracing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trace_scores",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value_num", sa.Float(), nullable=True),
        sa.Column("value_text", sa.String(255), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_scores")),
    )
    op.create_index("ix_trace_scores_trace_id", "trace_scores", ["trace_id"])


def downgrade() -> None:
    op.drop_index("ix_trace_scores_trace_id", table_name="trace_scores")
    op.drop_table("trace_scores")
