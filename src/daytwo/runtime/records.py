"""Run records: the ``runtime_runs`` row, the one status every reader uses.

Written when a run is created, by the workflow as it runs (running, waiting, its
outcome) and by whoever steers it; read back as the run's view (:func:`run_view`).
Every write is one statement in the store's write transaction; each change that
matters is audited through the sink the runtime binds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from daytwo.exceptions import ConflictError, NotFoundError
from daytwo.store import Store, utcnow
from daytwo.store.tables.runtime import RunRecord

__all__ = ["FINAL", "OPEN", "RunRecords", "run_view", "summary_view"]

FINAL = frozenset({"succeeded", "failed", "cancelled"})
OPEN = ("queued", "running", "waiting")

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
    ) -> None:
        """Insert a queued run (``must_be_new``: a caller-chosen id that must be free)."""
        if must_be_new:
            with self.store.session() as s:
                if s.get(RunRecord, run_id) is not None:
                    raise ConflictError(f"run {run_id} exists already", hint="use another run id")
        # A write transaction, retried while SQLite stays locked (the insert is all it does).
        self.store.write(
            lambda s: s.add(
                RunRecord(
                    id=run_id,
                    agent_name=agent,
                    agent_version=version,
                    status="queued",
                    inputs=inputs,
                    outputs={},
                    decisions=[],
                    principal=principal,
                    forked_from=forked_from,
                    session_id=session_id,
                    user_id=user_id,
                )
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
        """Change columns of the run's row (one UPDATE)."""
        change = sa.update(RunRecord).where(RunRecord.id == run_id).values(**values)
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
    def finish_run(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write the run's final status, partial results and decisions."""
        # One UPDATE, no read first: on SQLite a read-then-write transaction cannot
        # wait for the lock (its snapshot would be stale), a plain UPDATE can.
        final = (
            sa.update(RunRecord)
            .where(RunRecord.id == summary["run_id"], RunRecord.status != "cancelled")
            .values(
                status=summary["status"],
                outputs={"answer": summary["answer"], "steps": summary["outputs"]},
                decisions=summary["decisions"],
                error=summary["error"],
                steps_done=summary["steps"],
                tokens=summary["tokens"],
                cost_usd=summary["cost_usd"],
                finished_at=utcnow(),
            )
        )
        self.store.write(lambda s: s.execute(final))
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
