"""server: tenant ownership of other layers' named objects

Revision ID: 0701_server_ownership
Revises: 0700_server
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import UTCDateTime

revision = "0701_server_ownership"
down_revision = "0700_server"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_ownership",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", name=op.f("pk_server_ownership")),
    )
    op.create_index("ix_server_ownership_tenant", "server_ownership", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_server_ownership_tenant", table_name="server_ownership")
    op.drop_table("server_ownership")
