"""runtime: agent versions, promotions, runs

Revision ID: 0500_runtime
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType, UTCDateTime

revision = "0500_runtime"
down_revision = "0001_core"
branch_labels = ("runtime",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runtime_agent_versions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_agent_versions")),
        sa.UniqueConstraint("name", "version", name="uq_runtime_agent_versions_name"),
    )
    op.create_index(
        op.f("ix_runtime_agent_versions_name"), "runtime_agent_versions", ["name"], unique=False
    )
    op.create_table(
        "runtime_agent_promotions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_agent_promotions")),
    )
    op.create_index(
        "ix_runtime_agent_promotions_name_alias",
        "runtime_agent_promotions",
        ["name", "alias"],
        unique=False,
    )
    op.create_table(
        "runtime_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("agent_name", sa.String(128), nullable=False),
        sa.Column("agent_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("inputs", JSONType, nullable=False),
        sa.Column("outputs", JSONType, nullable=False),
        sa.Column("decisions", JSONType, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("forked_from", sa.String(64), nullable=True),
        sa.Column("steps_done", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_runs")),
    )
    op.create_index(op.f("ix_runtime_runs_agent_name"), "runtime_runs", ["agent_name"])
    op.create_index(op.f("ix_runtime_runs_status"), "runtime_runs", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_runtime_runs_status"), table_name="runtime_runs")
    op.drop_index(op.f("ix_runtime_runs_agent_name"), table_name="runtime_runs")
    op.drop_table("runtime_runs")
    op.drop_index("ix_runtime_agent_promotions_name_alias", table_name="runtime_agent_promotions")
    op.drop_table("runtime_agent_promotions")
    op.drop_index(op.f("ix_runtime_agent_versions_name"), table_name="runtime_agent_versions")
    op.drop_table("runtime_agent_versions")
