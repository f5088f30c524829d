"""runtime: executor leases (who runs the runs, and since when nobody does)

Revision ID: 0501_runtime_executors
Revises: 0500_runtime
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import UTCDateTime

revision = "0501_runtime_executors"
down_revision = "0500_runtime"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runtime_executors",
        sa.Column("executor_id", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("executor_id", name=op.f("pk_runtime_executors")),
    )


def downgrade() -> None:
    op.drop_table("runtime_executors")
