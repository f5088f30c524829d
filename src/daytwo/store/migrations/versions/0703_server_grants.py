"""server: grants of shared objects (sample tools, public collections) to tenants

Revision ID: 0703_server_grants
Revises: 0702_server_model_gateway
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import UTCDateTime

revision = "0703_server_grants"
down_revision = "0702_server_model_gateway"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_grants",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "tenant", name=op.f("pk_server_grants")),
    )
    op.create_index("ix_server_grants_tenant", "server_grants", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_server_grants_tenant", table_name="server_grants")
    op.drop_table("server_grants")
