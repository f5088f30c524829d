"""evals: golden sets with immutable versions, runs, results, metrics, judges, alerts

Revision ID: 0600_evals
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType, UTCDateTime

revision = "0600_evals"
down_revision = "0001_core"
branch_labels = ("evals",)
depends_on = None


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(32), nullable=False)


def upgrade() -> None:
    op.create_table(
        "eval_sets",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_eval_sets_name")),
    )
    op.create_table(
        "eval_set_versions",
        _id(),
        sa.Column("set_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("case_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["set_id"],
            ["eval_sets.id"],
            name=op.f("fk_eval_set_versions_set_id_eval_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_set_versions")),
        sa.UniqueConstraint("set_id", "version", name="uq_eval_set_versions_set_ver"),
    )
    op.create_table(
        "eval_cases",
        _id(),
        sa.Column("set_id", sa.String(32), nullable=False),
        sa.Column("case_key", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provenance", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["set_id"],
            ["eval_sets.id"],
            name=op.f("fk_eval_cases_set_id_eval_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_cases")),
    )
    op.create_index(op.f("ix_eval_cases_set_id"), "eval_cases", ["set_id"], unique=False)
    op.create_table(
        "eval_version_cases",
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["eval_cases.id"],
            name=op.f("fk_eval_version_cases_case_id_eval_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["eval_set_versions.id"],
            name=op.f("fk_eval_version_cases_version_id_eval_set_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "case_id", name=op.f("pk_eval_version_cases")),
    )
    op.create_table(
        "eval_runs",
        _id(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("agent_version", sa.String(100), nullable=False),
        sa.Column("set_name", sa.String(200), nullable=False),
        sa.Column("set_version", sa.Integer(), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("summary", JSONType, nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_runs")),
    )
    op.create_index("ix_eval_runs_agent_set", "eval_runs", ["agent", "set_name"], unique=False)
    op.create_table(
        "eval_results",
        _id(),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("case_key", sa.String(200), nullable=False),
        sa.Column("repeat", sa.Integer(), nullable=False),
        sa.Column("output", JSONType, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["eval_runs.id"],
            name=op.f("fk_eval_results_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_results")),
    )
    op.create_index(op.f("ix_eval_results_run_id"), "eval_results", ["run_id"], unique=False)
    op.create_table(
        "eval_metrics",
        _id(),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("result_id", sa.String(32), nullable=True),
        sa.Column("case_key", sa.String(200), nullable=False),
        sa.Column("repeat", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("detail", JSONType, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["eval_runs.id"],
            name=op.f("fk_eval_metrics_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_metrics")),
    )
    op.create_index("ix_eval_metrics_run_name", "eval_metrics", ["run_id", "name"], unique=False)
    op.create_table(
        "eval_judges",
        _id(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_judges")),
        sa.UniqueConstraint("name", "version", name="uq_eval_judges_name_version"),
    )
    op.create_table(
        "eval_judgements",
        _id(),
        sa.Column("judge_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("case_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("consistent", sa.Boolean(), nullable=True),
        sa.Column("parse_status", sa.String(16), nullable=False),
        sa.Column("human_label", sa.String(32), nullable=True),
        sa.Column("detail", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["judge_id"],
            ["eval_judges.id"],
            name=op.f("fk_eval_judgements_judge_id_eval_judges"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_judgements")),
    )
    op.create_index(
        op.f("ix_eval_judgements_judge_id"), "eval_judgements", ["judge_id"], unique=False
    )
    op.create_table(
        "eval_alerts",
        _id(),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("set_name", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("baseline_mean", sa.Float(), nullable=False),
        sa.Column("recent_mean", sa.Float(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("detail", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_alerts")),
    )
    op.create_index(op.f("ix_eval_alerts_run_id"), "eval_alerts", ["run_id"], unique=False)


def downgrade() -> None:
    for table in (
        "eval_alerts",
        "eval_judgements",
        "eval_judges",
        "eval_metrics",
        "eval_results",
        "eval_runs",
        "eval_version_cases",
        "eval_cases",
        "eval_set_versions",
        "eval_sets",
    ):
        op.drop_table(table)
