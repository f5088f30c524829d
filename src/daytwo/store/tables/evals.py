"""Tables of the evals layer: golden sets (immutable versions), runs, metrics, judges, alerts.

A golden set has numbered versions; a version lists its cases through
``eval_version_cases`` and never changes once written. Cases are immutable
too: editing a case writes a new row with the same ``case_key``. Proposed
(synthetic or promoted) cases wait with ``status="proposed"`` until reviewed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from daytwo.store.base import Base, JSONType, UTCDateTime, new_id, utcnow

__all__ = [
    "EvalAlert",
    "EvalAnnotation",
    "EvalCase",
    "EvalJudge",
    "EvalJudgement",
    "EvalMetric",
    "EvalResult",
    "EvalRun",
    "EvalSet",
    "EvalSetVersion",
    "EvalVersionCase",
]


class EvalSet(Base):
    """A named golden set."""

    __tablename__ = "eval_sets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvalSetVersion(Base):
    """One immutable version of a golden set."""

    __tablename__ = "eval_set_versions"
    __table_args__ = (UniqueConstraint("set_id", "version", name="uq_eval_set_versions_set_ver"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    set_id: Mapped[str] = mapped_column(ForeignKey("eval_sets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    case_count: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvalCase(Base):
    """One immutable case; ``status`` is accepted, proposed or rejected."""

    __tablename__ = "eval_cases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    set_id: Mapped[str] = mapped_column(ForeignKey("eval_sets.id", ondelete="CASCADE"), index=True)
    case_key: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvalVersionCase(Base):
    """Membership of a case in a set version."""

    __tablename__ = "eval_version_cases"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("eval_set_versions.id", ondelete="CASCADE"), primary_key=True
    )
    case_id: Mapped[str] = mapped_column(
        ForeignKey("eval_cases.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


class EvalRun(Base):
    """One evaluation run of an agent version over a set version (or a load test)."""

    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_agent_set", "agent", "set_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16), default="eval")
    agent: Mapped[str] = mapped_column(String(200))
    agent_version: Mapped[str] = mapped_column(String(100), default="")
    set_name: Mapped[str] = mapped_column(String(200), default="")
    set_version: Mapped[int] = mapped_column(Integer, default=0)
    repeats: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="running")
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class EvalResult(Base):
    """What the agent did on one case in one repeat of a run."""

    __tablename__ = "eval_results"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[str] = mapped_column(String(32))
    case_key: Mapped[str] = mapped_column(String(200))
    repeat: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    trace_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvalMetric(Base):
    """One metric value of one case (or of the whole run when ``case_key`` is empty)."""

    __tablename__ = "eval_metrics"
    __table_args__ = (Index("ix_eval_metrics_run_name", "run_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"))
    result_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    case_key: Mapped[str] = mapped_column(String(200), default="")
    repeat: Mapped[int] = mapped_column(Integer, default=0)
    component: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class EvalJudge(Base):
    """A versioned judge: prompt and model, identified by (name, version)."""

    __tablename__ = "eval_judges"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_eval_judges_name_version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    prompt_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvalJudgement(Base):
    """One verdict of a judge (a pairwise verdict combines both orders)."""

    __tablename__ = "eval_judgements"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    judge_id: Mapped[str] = mapped_column(ForeignKey("eval_judges.id"), index=True)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    case_key: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    consistent: Mapped[bool | None] = mapped_column(nullable=True)
    parse_status: Mapped[str] = mapped_column(String(16), default="ok")
    human_label: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvalAlert(Base):
    """A drift alert raised by ``daytwo eval watch``, stored with the run that raised it."""

    __tablename__ = "eval_alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    agent: Mapped[str] = mapped_column(String(200))
    set_name: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(64))
    baseline_mean: Mapped[float] = mapped_column(Float)
    recent_mean: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EvalAnnotation(Base):
    """A human reviewer's label of one judge verdict (the annotation queue).

    ``label`` is a 1..5 score (pointwise) or ``candidate``/``baseline``/``tie``
    (pairwise); ``shown_first`` records which answer the reviewer saw as "A", so a
    pair shown to two reviewers in both orders can be checked for position bias.
    """

    __tablename__ = "eval_annotations"
    __table_args__ = (
        UniqueConstraint("judgement_id", "reviewer", name="uq_eval_annotations_item_reviewer"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    judgement_id: Mapped[str] = mapped_column(
        ForeignKey("eval_judgements.id", ondelete="CASCADE"), index=True
    )
    reviewer: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(32))
    shown_first: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
