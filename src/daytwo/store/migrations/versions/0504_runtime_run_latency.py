"""runtime: a run's latency stored when it ends, and the health index reads its bucket

Revision ID: 0504_runtime_run_latency
Revises: 0503_runtime_run_health
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0504_runtime_run_latency"
down_revision = "0503_runtime_run_health"
branch_labels = None
depends_on = None

BUCKETS_PER_E = 16  # runtime/records.LATENCY_BUCKETS_PER_E when this revision was written

OLD_COLUMNS = [
    "created_at",
    "principal",
    "agent_name",
    "agent_version",
    "status",
    "finished_at",
    "cost_usd",
    "tokens",
]
NEW_COLUMNS = [
    "created_at",
    "principal",
    "agent_name",
    "agent_version",
    "status",
    "latency_bucket",
    "cost_usd",
    "tokens",
]

# finished_at - created_at in ms, exactly as Python's (finished - created) / 1 ms:
# PostgreSQL's epoch of an interval is an exact numeric; SQLite stores
# 'YYYY-MM-DD HH:MM:SS.ffffff', so whole seconds and microseconds are counted apart as
# integers (SQLite's date functions keep milliseconds only, and round: given the
# fraction, strftime('%s') of 12:00:00.9996 says 12:00:01).
_PG_MS = "CAST(EXTRACT(EPOCH FROM finished_at - created_at) * 1000 AS DOUBLE PRECISION)"
_SQLITE_MS = (
    "((strftime('%s', substr(finished_at, 1, 19)) - strftime('%s', substr(created_at, 1, 19)))"
    " * 1000000"
    " + (CAST(substr(finished_at, 21, 6) AS INTEGER)"
    " - CAST(substr(created_at, 21, 6) AS INTEGER))) / 1000.0"
)


def upgrade() -> None:
    # The dashboard's overview grouped every run of a window by a latency bucket computed
    # per row (julianday() or epoch differences, then ln()); the run now carries both,
    # written once when it ends (runtime/records.end_run), and the covering index holds
    # the bucket instead of finished_at.
    with op.batch_alter_table("runtime_runs") as batch:
        batch.add_column(sa.Column("latency_ms", sa.Float(), nullable=True))
        batch.add_column(sa.Column("latency_bucket", sa.Integer(), nullable=True))
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute(
        f"UPDATE runtime_runs SET latency_ms = {_SQLITE_MS if sqlite else _PG_MS}"
        " WHERE finished_at IS NOT NULL"
    )
    greatest = "max" if sqlite else "greatest"
    op.execute(
        "UPDATE runtime_runs SET latency_bucket ="
        f" CAST(floor(ln({greatest}(latency_ms, 1.0)) * {BUCKETS_PER_E}) AS INTEGER)"
        " WHERE latency_ms IS NOT NULL"
    )
    op.drop_index("ix_runtime_runs_health", "runtime_runs")
    op.create_index("ix_runtime_runs_health", "runtime_runs", NEW_COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_runtime_runs_health", "runtime_runs")
    op.create_index("ix_runtime_runs_health", "runtime_runs", OLD_COLUMNS)
    with op.batch_alter_table("runtime_runs") as batch:
        batch.drop_column("latency_bucket")
        batch.drop_column("latency_ms")
