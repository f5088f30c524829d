"""tracing: checkpoints sign a mark of every record they seal

Revision ID: 0330_tracing_audit_marks
Revises: 0320_tracing_scores
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0330_tracing_audit_marks"
down_revision = "0320_tracing_scores"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.add_column(sa.Column("marks", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.drop_column("marks")
