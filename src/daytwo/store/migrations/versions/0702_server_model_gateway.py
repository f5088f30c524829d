"""server: model gateway routes (aliases with fallback chains) and budgets per tenant / key

Revision ID: 0702_server_model_gateway
Revises: 0701_server_ownership
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType, UTCDateTime

revision = "0702_server_model_gateway"
down_revision = "0701_server_ownership"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_model_routes",
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("targets", JSONType, nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "name", name=op.f("pk_server_model_routes")),
    )
    op.create_table(
        "server_model_budgets",
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(100), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("usd_per_day", sa.Float(), nullable=True),
        sa.Column("tokens_per_day", sa.BigInteger(), nullable=True),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "subject", name=op.f("pk_server_model_budgets")),
    )
    op.create_index("ix_server_model_budgets_tenant", "server_model_budgets", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_server_model_budgets_tenant", table_name="server_model_budgets")
    op.drop_table("server_model_budgets")
    op.drop_table("server_model_routes")
