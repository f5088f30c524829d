"""tracing: partial indexes from a model or a tool to its trace, and from a trace to its run

Model and tool spans of a runtime run carry no run id (only the run's and its steps'
spans do); the trace explorer finds the runs that used a model or a tool through the
trace. Partial indexes keep the cost off the many spans that are neither.

Revision ID: 0340_tracing_run_lookups
Revises: 0330_tracing_audit_marks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0340_tracing_run_lookups"
down_revision = "0330_tracing_audit_marks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    model = sa.text("model IS NOT NULL")
    tool = sa.text("operation = 'execute_tool'")
    run = sa.text("run_id IS NOT NULL")
    op.create_index(
        "ix_trace_spans_model_trace",
        "trace_spans",
        ["model", "trace_id"],
        sqlite_where=model,
        postgresql_where=model,
    )
    op.create_index(
        "ix_trace_spans_tool_trace",
        "trace_spans",
        ["name", "trace_id"],
        sqlite_where=tool,
        postgresql_where=tool,
    )
    op.create_index(
        "ix_trace_spans_trace_run",
        "trace_spans",
        ["trace_id", "run_id"],
        sqlite_where=run,
        postgresql_where=run,
    )


def downgrade() -> None:
    op.drop_index("ix_trace_spans_trace_run", "trace_spans")
    op.drop_index("ix_trace_spans_tool_trace", "trace_spans")
    op.drop_index("ix_trace_spans_model_trace", "trace_spans")
