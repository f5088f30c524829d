"""runtime: a covering index for the dashboard's health aggregates over a time window

Revision ID: 0503_runtime_run_health
Revises: 0502_runtime_run_facets
"""

from __future__ import annotations

from alembic import op

revision = "0503_runtime_run_health"
down_revision = "0502_runtime_run_facets"
branch_labels = None
depends_on = None

COLUMNS = [
    "created_at",
    "principal",
    "agent_name",
    "agent_version",
    "status",
    "finished_at",
    "cost_usd",
    "tokens",
]


def upgrade() -> None:
    # The overview groups a window of runs by agent@version, status, hour or day and
    # latency bucket: with every column it reads in the index, the window is one index
    # range scan and no run row (with its inputs and outputs) is read.
    op.create_index("ix_runtime_runs_health", "runtime_runs", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_runtime_runs_health", "runtime_runs")
