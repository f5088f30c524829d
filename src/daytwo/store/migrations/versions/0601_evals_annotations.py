"""evals: human annotations of judge verdicts (the review queue, judge calibration)

Revision ID: 0601_evals_annotations
Revises: 0600_evals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import UTCDateTime

revision = "0601_evals_annotations"
down_revision = "0600_evals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_annotations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("judgement_id", sa.String(32), nullable=False),
        sa.Column("reviewer", sa.String(255), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("shown_first", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["judgement_id"],
            ["eval_judgements.id"],
            name=op.f("fk_eval_annotations_judgement_id_eval_judgements"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_annotations")),
        sa.UniqueConstraint("judgement_id", "reviewer", name="uq_eval_annotations_item_reviewer"),
    )
    op.create_index(
        op.f("ix_eval_annotations_judgement_id"),
        "eval_annotations",
        ["judgement_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_eval_annotations_judgement_id"), table_name="eval_annotations")
    op.drop_table("eval_annotations")
