"""Explain a run step by step, in plain language, from its spans and decision records.

A run is every span carrying ``daytwo.run.id`` plus all of their descendants (model
calls, tool calls and retrievals inside the run's steps), ordered by start time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select

from daytwo.exceptions import NotFoundError
from daytwo.store import Store
from daytwo.store.tables.tracing import DecisionRow, SpanRow
from daytwo.tracing import attributes as A

__all__ = [
    "ExplainedDecision",
    "ExplainedStep",
    "explain_run",
    "explain_trace",
    "render_text",
]


@dataclass(frozen=True)
class ExplainedDecision:
    """One decision taken in a step: what kind, why (one sentence), and the facts."""

    kind: str
    summary: str
    data: dict[str, Any]
    at: datetime


@dataclass
class ExplainedStep:
    """One span of the run, with a plain-language sentence and its decisions."""

    index: int
    depth: int
    span_id: str
    parent_span_id: str | None
    name: str
    operation: str | None
    started_at: datetime
    duration_ms: float
    status: str
    text: str
    cost_usd: str | None = None
    cost_status: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    decisions: list[ExplainedDecision] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        for d in data["decisions"]:
            d["at"] = d["at"].isoformat()
        return data


def _cost_phrase(row: SpanRow) -> str:
    if row.cost_status == "priced":
        return f"cost ${row.cost_usd}"
    if row.cost_status == "unknown":
        return "cost unknown (no price for this model)"
    if row.cost_status == "wrapper":
        return "cost counted in the call inside it"
    return ""


def _sentence(row: SpanRow) -> str:
    a = row.attributes or {}
    op = row.operation
    ms = f"{row.duration_ms:.0f} ms"
    if op in ("chat", "text_completion", "generate_content"):
        parts = [f"{row.input_tokens or 0} tokens in", f"{row.output_tokens or 0} out"]
        cost = _cost_phrase(row)
        if cost:
            parts.append(cost)
        text = f"Called the model {row.model or 'unknown'} ({', '.join(parts)}) in {ms}."
    elif op == "embeddings":
        text = f"Embedded {row.input_tokens or 0} tokens with {row.model or 'unknown'} in {ms}."
    elif op == "execute_tool":
        tool = a.get(A.TOOL_NAME) or row.name.removeprefix("execute_tool ").strip() or "a tool"
        version = a.get("daytwo.tool.version")
        cost = _cost_phrase(row)
        text = f"Called the tool {tool}" + (f" v{version}" if version else "") + f" in {ms}"
        text += f" ({cost})." if cost else "."
    elif op == "retrieval":
        coll = a.get(A.KB_COLLECTION) or row.name.removeprefix("retrieve ").strip()
        mode = a.get(A.KB_MODE)
        hits = a.get(A.KB_HITS)
        text = f"Searched the collection {coll}" + (f" ({mode} search)" if mode else "")
        text += f" and found {hits} passages" if hits is not None else ""
        text += f" in {ms}."
    elif a.get(A.STEP_ID) is not None:
        kind = a.get(A.STEP_KIND)
        text = f"Ran step {a.get(A.STEP_ID)}" + (f" ({kind})" if kind else "") + f" in {ms}."
    elif row.run_id is not None and a.get(A.AGENT_NAME):
        text = f"Started run {row.run_id} of agent {a.get(A.AGENT_NAME)}"
        if a.get(A.AGENT_VERSION):
            text += f" version {a.get(A.AGENT_VERSION)}"
        if row.principal:
            text += f" for {row.principal}"
        text += f"; it took {ms}."
    else:
        text = f"{row.name} ({ms})."
    if row.status == "error":
        text += f" It failed: {row.status_message or 'error'}."
    return text


def render_text(steps: list[ExplainedStep]) -> str:
    """The explanation as indented plain text, one step per line, decisions below."""
    lines: list[str] = []
    for step in steps:
        pad = "  " * step.depth
        lines.append(f"{pad}{step.index}. {step.text}")
        for d in step.decisions:
            lines.append(f"{pad}   why ({d.kind.replace('_', ' ')}): {d.summary}")
    return "\n".join(lines)


def explain_run(store: Store, run_id: str) -> list[ExplainedStep]:
    """What happened in run ``run_id`` and why, step by step (NotFoundError if unknown)."""
    with store.session() as s:
        run_spans = list(s.scalars(select(SpanRow).where(SpanRow.run_id == run_id)))
        if not run_spans:
            raise NotFoundError(
                f"no spans recorded for run {run_id!r}",
                hint="check the run id (`daytwo runs list`), and that tracing was set up "
                "and its traces have not expired",
            )
        trace_ids = {sp.trace_id for sp in run_spans}
        spans = list(s.scalars(select(SpanRow).where(SpanRow.trace_id.in_(trace_ids))))
        decisions = list(
            s.scalars(
                select(DecisionRow)
                .where(DecisionRow.trace_id.in_(trace_ids))
                .order_by(DecisionRow.at, DecisionRow.id)
            )
        )
    return _explained(run_spans, spans, decisions)


def explain_trace(
    store: Store, trace_id: str, *, visible: ColumnElement[bool] | None = None
) -> list[ExplainedStep]:
    """What happened in trace ``trace_id`` (an external agent's, or one with no run row),
    from its spans that match ``visible`` (the caller's tenant: spans of anyone else in
    the same trace are neither shown nor counted). NotFoundError when none match."""
    with store.session() as s:
        query = select(SpanRow).where(SpanRow.trace_id == trace_id)
        if visible is not None:
            query = query.where(visible)
        spans = list(s.scalars(query))
        if not spans:
            raise NotFoundError(
                f"no spans recorded for trace {trace_id!r}",
                hint="check the trace id, and that the agent exported its spans "
                "(daytwo.sdk.flush()) before they expired",
            )
        decisions = list(
            s.scalars(
                select(DecisionRow)
                .where(
                    DecisionRow.trace_id == trace_id,
                    DecisionRow.span_id.in_([sp.span_id for sp in spans]),
                )
                .order_by(DecisionRow.at, DecisionRow.id)
            )
        )
    return _explained(spans, spans, decisions)


def _explained(
    roots: list[SpanRow], spans: list[SpanRow], decisions: list[DecisionRow]
) -> list[ExplainedStep]:
    """``roots`` and every span below them, in start order, with depth and decisions."""
    by_id = {sp.span_id: sp for sp in spans}
    children: dict[str | None, list[SpanRow]] = {}
    for sp in spans:
        children.setdefault(sp.parent_span_id, []).append(sp)
    included: dict[str, int] = {}
    stack = [(sp, 0) for sp in roots]
    while stack:
        sp, _ = stack.pop()
        if sp.span_id in included:
            continue
        included[sp.span_id] = 0
        stack.extend((c, 0) for c in children.get(sp.span_id, []))

    def depth(span_id: str) -> int:
        d = 0
        parent = by_id[span_id].parent_span_id
        while parent is not None and parent in included and d < 100:
            d += 1
            parent = by_id[parent].parent_span_id
        return d

    by_span: dict[str, list[ExplainedDecision]] = {}
    for dec in decisions:
        by_span.setdefault(dec.span_id, []).append(
            ExplainedDecision(dec.kind, dec.summary, dict(dec.data or {}), dec.at)
        )
    ordered = sorted((by_id[i] for i in included), key=lambda r: (r.start_time, r.end_time))
    return [
        ExplainedStep(
            index=i,
            depth=depth(row.span_id),
            span_id=row.span_id,
            parent_span_id=row.parent_span_id,
            name=row.name,
            operation=row.operation,
            started_at=row.start_time,
            duration_ms=row.duration_ms,
            status=row.status,
            text=_sentence(row),
            cost_usd=row.cost_usd,
            cost_status=row.cost_status,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            decisions=by_span.get(row.span_id, []),
        )
        for i, row in enumerate(ordered, start=1)
    ]
