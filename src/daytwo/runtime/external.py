"""Runs of external agents: one run record per trace an agent sent over OTLP.

The agent ran elsewhere (LangGraph, pydantic-ai, plain OpenAI SDK code); daytwo only
saw its spans. Each trace becomes a run in ``runtime_runs`` (id ``otlp-<trace id>``,
agent version 0) so the run list, the dashboard, costs, ``runs explain`` and the
audit view treat it like a run of a daytwo agent. The record is rewritten from the
trace's summary after every export request that touches the trace; its end time and
latency come from :func:`~daytwo.runtime.records.run_timing`, counted from the creation
time first recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from daytwo.runtime.records import run_timing
from daytwo.store.base import utcnow
from daytwo.store.tables.runtime import RunRecord
from daytwo.tracing.ingest import TraceSummary

__all__ = ["EXTERNAL_VERSION", "record_external_runs"]

EXTERNAL_VERSION = 0
"""Agent version of an external run (daytwo holds no spec of the agent)."""

_RUNS: Table = RunRecord.__table__  # type: ignore[assignment]
_MAX_TEXT = 4000


def _io(value: Any) -> Any:
    """An input/output value as sent (JSON text is decoded), bounded in size."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = value
        value = decoded
    text = json.dumps(value, default=str)
    return value if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


def record_external_runs(
    conn: Connection, summaries: Sequence[TraceSummary], principal: str
) -> list[str]:
    """Create or update the run record of each trace; return the ids of new runs.

    One ``executemany`` for the new runs and one per shape of update (an export
    request carries many traces; a statement per trace cost more than the spans).
    """
    if not summaries:
        return []
    ids = [s.run_id for s in summaries]
    # The runs already recorded, with the creation time their latency counts from.
    known: dict[str, datetime] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        query = select(RunRecord.id, RunRecord.created_at).where(RunRecord.id.in_(chunk))
        for run_id, created_at in conn.execute(query):
            known[run_id] = created_at
    inserts: list[dict[str, Any]] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for s in summaries:
        created = known.get(s.run_id) or s.started_at or utcnow()
        values: dict[str, Any] = {
            "status": s.status,
            "error": s.error,
            "tokens": s.input_tokens + s.output_tokens,
            "cost_usd": float(s.cost_usd),
            "steps_done": s.spans,
            **run_timing(created, s.finished_at if s.status != "running" else None),
        }
        if s.input is not None:
            values["inputs"] = {"input": _io(s.input)}
        if s.output is not None:
            values["outputs"] = {"output": _io(s.output)}
        if s.session_id:
            values["session_id"] = s.session_id[:128]
        if s.root_name is not None and s.status != "running":
            values["agent_name"] = (s.agent or s.root_name)[:128]
        if s.run_id in known:
            values["run_id"] = s.run_id
            updates.setdefault(tuple(sorted(values)), []).append(values)
            continue
        values.setdefault("inputs", {})
        values.setdefault("outputs", {})
        values.setdefault("agent_name", (s.agent or s.root_name or "external")[:128])
        inserts.append(
            {
                "id": s.run_id,
                "agent_version": EXTERNAL_VERSION,
                "decisions": [],
                "principal": principal,
                "forked_from": None,
                "created_at": created,
                **values,
            }
        )
    if inserts:
        conn.execute(insert(_RUNS), inserts)
    for shape, rows in updates.items():
        stmt = (
            update(_RUNS)
            .where(_RUNS.c.id == bindparam("run_id"))
            .values({c: bindparam(c) for c in shape if c != "run_id"})
        )
        conn.execute(stmt, rows)
    return [row["id"] for row in inserts]
