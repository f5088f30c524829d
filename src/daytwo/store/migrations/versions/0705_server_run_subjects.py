"""server: the end user a run acts on behalf of

Revision ID: 0705_server_run_subjects
Revises: 0704_server_key_use_days
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType, UTCDateTime

revision = "0705_server_run_subjects"
down_revision = "0704_server_key_use_days"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_run_subjects",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("groups", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_server_run_subjects")),
    )


def downgrade() -> None:
    op.drop_table("server_run_subjects")
