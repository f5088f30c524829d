"""gateway: learned drift profiles shared through the store

Revision ID: 0202_gateway_drift_profiles
Revises: 0201_gateway_agent_tenants
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType, UTCDateTime

revision = "0202_gateway_drift_profiles"
down_revision = "0201_gateway_agent_tenants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_drift_profiles",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("profiles", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_gateway_drift_profiles")),
    )


def downgrade() -> None:
    op.drop_table("gateway_drift_profiles")
