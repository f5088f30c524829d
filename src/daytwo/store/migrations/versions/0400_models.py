"""models: drift-canary records, outputs and checks

Revision ID: 0400_models
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType, UTCDateTime

revision = "0400_models"
down_revision = "0001_core"
branch_labels = ("models",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models_canary_records",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("profile", sa.String(128), nullable=False),
        sa.Column("fingerprint", JSONType, nullable=False),
        sa.Column("fingerprint_hash", sa.String(64), nullable=False),
        sa.Column("prompt_set_hash", sa.String(64), nullable=False),
        sa.Column("top_k", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models_canary_records")),
    )
    op.create_index(
        op.f("ix_models_canary_records_profile"), "models_canary_records", ["profile"], unique=False
    )
    op.create_table(
        "models_canary_outputs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tokens", JSONType, nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["models_canary_records.id"],
            name=op.f("fk_models_canary_outputs_record_id_models_canary_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models_canary_outputs")),
    )
    op.create_index(
        op.f("ix_models_canary_outputs_record_id"),
        "models_canary_outputs",
        ["record_id"],
        unique=False,
    )
    op.create_table(
        "models_canary_checks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(32), nullable=False),
        sa.Column("profile", sa.String(128), nullable=False),
        sa.Column("fingerprint", JSONType, nullable=False),
        sa.Column("exact_match_rate", sa.Float(), nullable=False),
        sa.Column("logprob_divergence", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models_canary_checks")),
    )
    op.create_index(
        op.f("ix_models_canary_checks_record_id"),
        "models_canary_checks",
        ["record_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_models_canary_checks_record_id"), table_name="models_canary_checks")
    op.drop_table("models_canary_checks")
    op.drop_index(op.f("ix_models_canary_outputs_record_id"), table_name="models_canary_outputs")
    op.drop_table("models_canary_outputs")
    op.drop_index(op.f("ix_models_canary_records_profile"), table_name="models_canary_records")
    op.drop_table("models_canary_records")
