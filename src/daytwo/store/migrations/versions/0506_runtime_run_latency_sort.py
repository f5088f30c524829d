"""runtime: an index for the explorer's sort by latency (the stored latency_ms)

Revision ID: 0506_runtime_run_latency_sort
Revises: 0505_runtime_run_text
"""

from __future__ import annotations

from alembic import op

revision = "0506_runtime_run_latency_sort"
down_revision = "0505_runtime_run_text"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sorting by latency computed each run's wall time from two timestamps and sorted all
    # of the tenant's runs; the stored column (0504) can be read in index order.
    op.create_index("ix_runtime_runs_latency", "runtime_runs", ["latency_ms", "id"])


def downgrade() -> None:
    op.drop_index("ix_runtime_runs_latency", "runtime_runs")
