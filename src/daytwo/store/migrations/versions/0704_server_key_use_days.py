"""server: days on which each API key was used (first use per key per day is audited)

Revision ID: 0704_server_key_use_days
Revises: 0703_server_grants
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0704_server_key_use_days"
down_revision = "0703_server_grants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_key_use_days",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "day", name=op.f("pk_server_key_use_days")),
    )


def downgrade() -> None:
    op.drop_table("server_key_use_days")
