"""runtime: a trigram index over a run's inputs, outputs and error (explorer free text)

Revision ID: 0505_runtime_run_text
Revises: 0504_runtime_run_latency
"""

from __future__ import annotations

from alembic import op

from daytwo.store import run_text

revision = "0505_runtime_run_text"
down_revision = "0504_runtime_run_latency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The explorer's free text was a scan of every row the other filters leave; a
    # fragment found in no run read the whole table. See daytwo.store.run_text.
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for ddl in run_text.SQLITE_DDL:
            op.execute(ddl)
        op.execute(run_text.SQLITE_REBUILD)  # backfill the runs stored before
    else:
        for ddl in run_text.PG_DDL:  # an index is built over the existing rows
            op.execute(ddl)


def downgrade() -> None:
    bind = op.get_bind()
    for ddl in run_text.SQLITE_DROP if bind.dialect.name == "sqlite" else run_text.PG_DROP:
        op.execute(ddl)
