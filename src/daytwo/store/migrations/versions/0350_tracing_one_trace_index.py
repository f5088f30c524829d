"""tracing: one index from a trace to its spans and its runs, not two

``ix_trace_spans_trace_id`` (trace_id) and the partial ``ix_trace_spans_trace_run``
(trace_id, run_id WHERE run_id IS NOT NULL) answered the same lookups by trace: every
span with a run id was written into both. One full (trace_id, run_id) index answers
both kinds of query (a trace's spans; a trace's runs, by the range run_id IS NOT NULL
within the trace, still from the index alone), and each stored span updates one index
fewer (issue 16).

Revision ID: 0350_tracing_one_trace_index
Revises: 0340_tracing_run_lookups
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0350_tracing_one_trace_index"
down_revision = "0340_tracing_run_lookups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The new index first: queries by trace always have one.
    op.create_index("ix_trace_spans_trace_id_run", "trace_spans", ["trace_id", "run_id"])
    op.drop_index("ix_trace_spans_trace_run", "trace_spans")
    op.drop_index("ix_trace_spans_trace_id", "trace_spans")


def downgrade() -> None:
    run = sa.text("run_id IS NOT NULL")
    op.create_index("ix_trace_spans_trace_id", "trace_spans", ["trace_id"])
    op.create_index(
        "ix_trace_spans_trace_run",
        "trace_spans",
        ["trace_id", "run_id"],
        sqlite_where=run,
        postgresql_where=run,
    )
    op.drop_index("ix_trace_spans_trace_id_run", "trace_spans")
