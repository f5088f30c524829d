"""runtime: a run's session and end user, and the indexes the trace explorer filters by

Revision ID: 0502_runtime_run_facets
Revises: 0501_runtime_executors
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0502_runtime_run_facets"
down_revision = "0501_runtime_executors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runtime_runs") as batch:
        batch.add_column(sa.Column("session_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("user_id", sa.String(200), nullable=True))
    # Keyset pagination walks (created_at, id); session and user views walk their own.
    op.create_index("ix_runtime_runs_created_at", "runtime_runs", ["created_at", "id"])
    op.create_index("ix_runtime_runs_session", "runtime_runs", ["session_id", "created_at"])
    op.create_index("ix_runtime_runs_user", "runtime_runs", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_runtime_runs_user", "runtime_runs")
    op.drop_index("ix_runtime_runs_session", "runtime_runs")
    op.drop_index("ix_runtime_runs_created_at", "runtime_runs")
    with op.batch_alter_table("runtime_runs") as batch:
        batch.drop_column("user_id")
        batch.drop_column("session_id")
