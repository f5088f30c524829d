"""server: API keys and dashboard sessions

Revision ID: 0700_server
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import UTCDateTime

revision = "0700_server"
down_revision = "0001_core"
branch_labels = ("server",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_api_keys")),
    )
    op.create_index("ix_server_api_keys_tenant", "server_api_keys", ["tenant"])
    op.create_table(
        "server_sessions",
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_server_sessions")),
    )
    op.create_index("ix_server_sessions_key_id", "server_sessions", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_server_sessions_key_id", table_name="server_sessions")
    op.drop_table("server_sessions")
    op.drop_index("ix_server_api_keys_tenant", table_name="server_api_keys")
    op.drop_table("server_api_keys")
