"""knowledge: a text analyzer per generation (keyword search in other languages)

Revision ID: 0112_knowledge_analyzer
Revises: 0111_knowledge_meta_types

Every existing generation keeps the analyzer it was indexed with, ``english``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0112_knowledge_analyzer"
down_revision = "0111_knowledge_meta_types"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kb_generations") as batch:
        batch.add_column(
            sa.Column("analyzer", sa.String(32), nullable=False, server_default="english")
        )


def downgrade() -> None:
    with op.batch_alter_table("kb_generations") as batch:
        batch.drop_column("analyzer")
