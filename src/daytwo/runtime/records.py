"""Run records: the ``runtime_runs`` row, the one status every reader uses.

Written when a run is created, by the workflow as it runs (running, waiting, its
outcome) and by whoever steers it; read back as the run's view (:func:`run_view`).
Every write is one statement in the store's write transaction (a run's end reads the
run's creation time first, in the same transaction); each change that matters is
audited through the sink the runtime binds.

A run's end is written by :func:`end_run` only (the workflow's outcome, a cancel, the
executors' reaper, OTLP traces through :func:`run_timing`): it sets ``finished_at`` and
the latency the dashboard and the explorer read, ``latency_ms = finished_at -
created_at`` and its histogram bucket (:func:`latency_bucket`), so no reader computes
them per row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from daytwo.exceptions import ConflictError, NotFoundError
from daytwo.store import Store, utcnow
from daytwo.store.tables.runtime import RunRecord

__all__ = [
    "FINAL",
    "LATENCY_BUCKETS_PER_E",
    "OPEN",
    "UNLESS_CANCELLED",
    "RunRecords",
    "end_run",
    "insert_run",
    "latency_bucket",
    "run_timing",
    "run_view",
    "summary_view",
]

FINAL = frozenset({"succeeded", "failed", "cancelled"})
OPEN = ("queued", "running", "waiting")

LATENCY_BUCKETS_PER_E = 16
"""Latency histogram resolution: bucket ``b`` holds ``e^(b/16) <= ms < e^((b+1)/16)``
(runs under 1 ms in bucket 0), so a bucket's geometric middle is within ±3.2 % of any
latency in it."""

_TIMING = ("finished_at", "latency_ms", "latency_bucket")


def latency_bucket(ms: float) -> int:
    """The log-scaled histogram bucket of a latency in ms (``floor(16 ln ms)``, ≥ 0)."""
    return math.floor(math.log(max(ms, 1.0)) * LATENCY_BUCKETS_PER_E)


def run_timing(created_at: datetime, finished_at: datetime | None) -> dict[str, Any]:
    """The end columns of a run created at ``created_at``: ``finished_at``, ``latency_ms``
    (``finished_at - created_at`` in ms) and ``latency_bucket``; all None while open."""
    if finished_at is None:
        return dict.fromkeys(_TIMING)
    ms = (finished_at - created_at) / timedelta(milliseconds=1)
    return {"finished_at": finished_at, "latency_ms": ms, "latency_bucket": latency_bucket(ms)}


def insert_run(
    session: Session,
    run_id: str,
    agent: str,
    version: int,
    inputs: dict[str, Any],
    principal: str,
    *,
    forked_from: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    must_be_new: bool = False,
    status: str = "queued",
) -> datetime:
    """Insert a run's row in ``session`` (a write transaction), one Core INSERT; its
    creation time. ``must_be_new``: a caller-chosen id that must be free."""
    if must_be_new and session.scalar(sa.select(RunRecord.id).where(RunRecord.id == run_id)):
        raise ConflictError(f"run {run_id} exists already", hint="use another run id")
    created = utcnow()
    session.execute(
        _INSERT,
        {
            "id": run_id,
            "agent_name": agent,
            "agent_version": version,
            "status": status,
            "inputs": inputs,
            "outputs": {},
            "decisions": [],
            "principal": principal,
            "forked_from": forked_from,
            "session_id": session_id,
            "user_id": user_id,
            "steps_done": 0,
            "tokens": 0,
            "cost_usd": 0.0,
            "created_at": created,
        },
    )
    return created


def end_run(
    session: Session,
    run_id: str,
    values: dict[str, Any],
    *,
    only: sa.ColumnElement[bool] | None = None,
    at: datetime | None = None,
    created_at: datetime | None = None,
) -> bool:
    """Write the end of a run in ``session`` (a write transaction): ``values`` (its final
    status, ...) with :func:`run_timing` at ``at`` (now), in one UPDATE of the run's row
    if ``only`` holds for it. Whether the row was changed. ``created_at``: the run's
    creation time when the caller knows it (it created the row), else it is read first."""
    if any(k in values for k in _TIMING):
        raise ValueError("end_run sets the run's end time and latency itself")
    created = created_at
    if created is None:
        created = session.scalar(_CREATED_AT, {"end_run_id": run_id})
    if created is None:
        return False
    if only is None:
        change = _END
    elif only is UNLESS_CANCELLED:
        change = _END_UNLESS_CANCELLED
    else:
        change = _END.where(only)
    # The SET clause is the parameters' columns (a statement built once, not per run).
    params = {**values, **run_timing(created, at or utcnow()), "end_run_id": run_id}
    return cast("CursorResult[Any]", session.execute(change, params)).rowcount > 0


_RUNS = cast("sa.Table", RunRecord.__table__)
"""The runs table, for Core statements (no ORM unit of work on the hot path)."""

UNLESS_CANCELLED = _RUNS.c.status != "cancelled"
"""``end_run(only=UNLESS_CANCELLED)``: a cancelled run keeps its cancel."""
_CREATED_AT = sa.select(_RUNS.c.created_at).where(_RUNS.c.id == sa.bindparam("end_run_id"))
_END = sa.update(_RUNS).where(_RUNS.c.id == sa.bindparam("end_run_id"))
_END_UNLESS_CANCELLED = _END.where(UNLESS_CANCELLED)
_INSERT = sa.insert(_RUNS)

Audit = Callable[[str, str, str, dict[str, Any]], None]


class RunRecords:
    """The run rows of one store; ``audit(kind, actor, subject, data)`` records changes."""

    def __init__(self, store: Store, audit: Audit) -> None:
        self.store = store
        self.audit = audit

    def create(
        self,
        run_id: str,
        agent: str,
        version: int,
        inputs: dict[str, Any],
        principal: str,
        *,
        forked_from: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        must_be_new: bool = False,
        status: str = "queued",
    ) -> None:
        """Insert a run, queued (or ``running``: this process runs it at once);
        ``must_be_new``: a caller-chosen id that must be free."""
        # A write transaction, retried while SQLite stays locked (the insert is all it does).
        self.store.write(
            lambda s: insert_run(
                s,
                run_id,
                agent,
                version,
                inputs,
                principal,
                forked_from=forked_from,
                session_id=session_id,
                user_id=user_id,
                must_be_new=must_be_new,
                status=status,
            )
        )

    def row(self, run_id: str) -> RunRecord:
        """The run's row; NotFoundError when there is none."""
        with self.store.session() as s:
            row = s.get(RunRecord, run_id)
            if row is None:
                raise NotFoundError(f"no run {run_id!r}", hint="see `daytwo runs list`")
            return row

    def set(self, run_id: str, **values: Any) -> None:
        """Change columns of the run's row (one UPDATE); its end goes through :meth:`end`."""
        if any(k in values for k in _TIMING):
            raise ValueError("a run's end is written by RunRecords.end or reopen")
        change = sa.update(RunRecord).where(RunRecord.id == run_id).values(**values)
        self.store.write(lambda s: s.execute(change))

    def end(self, run_id: str, **values: Any) -> bool:
        """End the run now with ``values`` (e.g. ``status="cancelled"``); see :func:`end_run`."""
        return self.store.write(lambda s: end_run(s, run_id, values))

    def reopen(self, run_id: str, **values: Any) -> None:
        """Make an ended run open again (resumed): no end time, no latency, ``values``."""
        change = (
            sa.update(RunRecord)
            .where(RunRecord.id == run_id)
            .values(**values, **dict.fromkeys(_TIMING))
        )
        self.store.write(lambda s: s.execute(change))

    def recent(
        self, *, agent: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Recent runs, newest first."""
        with self.store.session() as s:
            q = sa.select(RunRecord).order_by(RunRecord.created_at.desc()).limit(limit)
            if agent:
                q = q.where(RunRecord.agent_name == agent)
            if status:
                q = q.where(RunRecord.status == status)
            return [run_view(r) for r in s.scalars(q).all()]

    # -- written by the workflow (inside durable steps) --------------------
    def finish_run(
        self, summary: dict[str, Any], *, created_at: datetime | None = None
    ) -> dict[str, Any]:
        """Write the run's final status, partial results and decisions (``created_at``:
        the run's creation time when this process created it, one read less)."""
        # A write transaction (BEGIN IMMEDIATE on SQLite), so reading the run's creation
        # time before the UPDATE waits for the lock instead of failing. A cancelled run
        # keeps its cancel.
        final = {
            "status": summary["status"],
            "outputs": {"answer": summary["answer"], "steps": summary["outputs"]},
            "decisions": summary["decisions"],
            "error": summary["error"],
            "steps_done": summary["steps"],
            "tokens": summary["tokens"],
            "cost_usd": summary["cost_usd"],
        }
        self.store.write(
            lambda s: end_run(
                s,
                summary["run_id"],
                final,
                only=UNLESS_CANCELLED,
                created_at=created_at,
            )
        )
        self.audit(
            "run.end",
            "runtime",
            summary["run_id"],
            {"status": summary["status"], "error": summary["error"], "steps": summary["steps"]},
        )
        return summary

    def mark_running(self, run_id: str) -> None:
        """Record that a worker executes the run (a queued run only; idempotent on replay)."""
        running = (
            sa.update(RunRecord)
            .where(RunRecord.id == run_id, RunRecord.status == "queued")
            .values(status="running")
        )
        self.store.write(lambda s: s.execute(running))

    def mark_waiting(self, run_id: str, step_id: str) -> dict[str, Any]:
        """Record that the run waits for an approval."""
        waiting = (
            sa.update(RunRecord)
            .where(RunRecord.id == run_id)
            .values(status="waiting", error=f"waiting for approval {step_id!r}")
        )
        self.store.write(lambda s: s.execute(waiting))
        return {"status": "ok", "output": step_id}

    def audit_step(self, run_id: str, step_id: str, result: dict[str, Any]) -> None:
        """Audit one step's outcome (never its output: it may hold personal data)."""
        self.audit(
            "run.step",
            "runtime",
            run_id,
            {
                "step": step_id,
                "status": result.get("status"),
                "tool": result.get("tool"),
                "attempts": result.get("attempts"),
            },
        )


def run_view(row: RunRecord) -> dict[str, Any]:
    """The run as every reader sees it (API, CLI, dashboard)."""
    return {
        "id": row.id,
        "agent": row.agent_name,
        "version": row.agent_version,
        "status": row.status,
        "principal": row.principal,
        "inputs": row.inputs,
        "outputs": row.outputs,
        "decisions": row.decisions,
        "error": row.error,
        "forked_from": row.forked_from,
        "steps_done": row.steps_done,
        "tokens": row.tokens,
        "cost_usd": row.cost_usd,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "session": row.session_id,
        "user": row.user_id,
    }


def summary_view(
    run_id: str,
    agent: str,
    version: int,
    inputs: dict[str, Any],
    principal: str,
    summary: dict[str, Any],
) -> dict[str, Any] | None:
    """The run as :func:`run_view` would read it back, from the workflow's final result.

    None when the result is not this run's final one (read the row instead).
    """
    if summary.get("run_id") != run_id or summary.get("status") not in FINAL:
        return None
    return {
        "id": run_id,
        "agent": agent,
        "version": version,
        "status": summary["status"],
        "principal": principal,
        "inputs": inputs,
        "outputs": {"answer": summary["answer"], "steps": summary["outputs"]},
        "decisions": summary["decisions"],
        "error": summary["error"],
        "forked_from": None,
        "steps_done": summary["steps"],
        "tokens": summary["tokens"],
        "cost_usd": summary["cost_usd"],
    }
