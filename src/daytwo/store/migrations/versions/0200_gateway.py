"""gateway: tool catalog, agents, vault, idempotency, call log, drift alerts

Revision ID: 0200_gateway
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType, UTCDateTime

revision = "0200_gateway"
down_revision = "0001_core"
branch_labels = ("gateway",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_tools",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("capability", sa.String(128), nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("definition", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_tools")),
        sa.UniqueConstraint("name", "version", name="uq_gateway_tools_name_version"),
    )
    with op.batch_alter_table("gateway_tools") as batch:
        batch.create_index(batch.f("ix_gateway_tools_name"), ["name"], unique=False)
        batch.create_index(batch.f("ix_gateway_tools_capability"), ["capability"], unique=False)

    op.create_table(
        "gateway_agents",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("tools", JSONType, nullable=False),
        sa.Column("rate_limit", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_gateway_agents")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_gateway_agents_key_hash")),
    )
    op.create_table(
        "gateway_secrets",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_gateway_secrets")),
    )
    op.create_table(
        "gateway_idempotency",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("arguments_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_gateway_idempotency")),
    )
    op.create_table(
        "gateway_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(64), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_calls")),
    )
    with op.batch_alter_table("gateway_calls") as batch:
        batch.create_index("ix_gateway_calls_tool_created_at", ["tool", "created_at"], unique=False)
    op.create_table(
        "gateway_drift_alerts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("field", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("response_index", sa.Integer(), nullable=False),
        sa.Column("sample", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_drift_alerts")),
    )
    with op.batch_alter_table("gateway_drift_alerts") as batch:
        batch.create_index(
            "ix_gateway_drift_alerts_tool_created_at", ["tool", "created_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("gateway_drift_alerts")
    op.drop_table("gateway_calls")
    op.drop_table("gateway_idempotency")
    op.drop_table("gateway_secrets")
    op.drop_table("gateway_agents")
    op.drop_table("gateway_tools")
