"""gateway: the tenant an agent principal acts for (existing agents: tenant ``default``)

Revision ID: 0201_gateway_agent_tenants
Revises: 0200_gateway
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0201_gateway_agent_tenants"
down_revision = "0200_gateway"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server default fills the rows already there: agents made on the host before
    # tenants existed act for tenant ``default``, like every other host-made object.
    with op.batch_alter_table("gateway_agents") as batch:
        batch.add_column(
            sa.Column("tenant", sa.String(100), nullable=False, server_default="default")
        )


def downgrade() -> None:
    with op.batch_alter_table("gateway_agents") as batch:
        batch.drop_column("tenant")
