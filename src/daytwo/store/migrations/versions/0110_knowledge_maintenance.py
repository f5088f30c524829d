"""knowledge maintenance: shadow migrations, shadow-read samples, ANN compaction state

Revision ID: 0110_knowledge_maintenance
Revises: 0100_knowledge
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import UTCDateTime

revision = "0110_knowledge_maintenance"
down_revision = "0100_knowledge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_migrations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("source_generation", sa.String(64), nullable=False),
        sa.Column("target_generation", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("checkpoint", sa.String(512), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("shadow_read_rate", sa.Float(), nullable=False),
        sa.Column("canary_percent", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_migrations")),
    )
    op.create_index("ix_kb_migrations_collection", "kb_migrations", ["collection"])
    op.create_table(
        "kb_shadow_reads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("migration", sa.String(64), nullable=False),
        sa.Column("served", sa.String(16), nullable=False),
        sa.Column("overlap", sa.Float(), nullable=False),
        sa.Column("active_ms", sa.Float(), nullable=False),
        sa.Column("shadow_ms", sa.Float(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_shadow_reads")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_kb_shadow_reads_migration", "kb_shadow_reads", ["migration"])
    op.create_table(
        "kb_index_maintenance",
        sa.Column("generation", sa.String(64), nullable=False),
        sa.Column("compacted_seq", sa.BigInteger(), nullable=False),
        sa.Column("vectors", sa.Integer(), nullable=False),
        sa.Column("vacuum_seconds", sa.Float(), nullable=False),
        sa.Column("vacuumed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("generation", name=op.f("pk_kb_index_maintenance")),
    )


def downgrade() -> None:
    op.drop_table("kb_index_maintenance")
    op.drop_index("ix_kb_shadow_reads_migration", table_name="kb_shadow_reads")
    op.drop_table("kb_shadow_reads")
    op.drop_index("ix_kb_migrations_collection", table_name="kb_migrations")
    op.drop_table("kb_migrations")
