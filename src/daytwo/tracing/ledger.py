"""The cost ledger: roll-ups of span costs and repricing after a price change.

Only spans that carry a cost (model calls, paid tools; ``cost_status`` priced or
unknown) are summed. Each model call and each tool call has one such span, opened by
the layer that makes the call (``models``, ``gateway``); foreign spans that wrap one
(a framework's LLM span sent over OTLP) are marked ``wrapper`` when they are stored,
so a roll-up is a plain sum. Dimensions that live on run
or step spans (session, agent version, principal, tenant) are inherited from the
nearest ancestor span that sets them. Sums are exact ``Decimal``; unpriced spans
are counted, never treated as $0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from sqlalchemy import or_, select, update

from daytwo.exceptions import InputError
from daytwo.store import Store
from daytwo.store.tables.tracing import SpanRow
from daytwo.tracing.pricing import PriceSource, span_cost

COUNTED = ("priced", "unknown")
"""``cost_status`` values a roll-up counts (``wrapper`` and NULL spans are never counted)."""

__all__ = [
    "COUNTED",
    "DIMENSIONS",
    "Dimension",
    "RepriceReport",
    "Rollup",
    "agent_name",
    "reprice",
    "rollup",
    "total",
]

Dimension = Literal[
    "query", "trace", "run", "session", "agent", "principal", "tenant", "model", "day"
]
DIMENSIONS: tuple[str, ...] = get_args(Dimension)

_INHERITED = {
    "run": "run_id",
    "session": "session_id",
    "agent": "agent",
    "principal": "principal",
    "tenant": "tenant",
}


@dataclass
class Rollup:
    """Cost of one group: exact USD of priced spans, and how many spans are unpriced."""

    key: str | None
    label: str | None = None
    cost_usd: Decimal = Decimal(0)
    priced_spans: int = 0
    unpriced_spans: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    models: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (cost as exact decimal text)."""
        return {
            "key": self.key,
            "label": self.label,
            "cost_usd": str(self.cost_usd),
            "priced_spans": self.priced_spans,
            "unpriced_spans": self.unpriced_spans,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "models": sorted(self.models),
        }


@dataclass
class _Node:
    parent: str | None
    name: str
    values: dict[str, str | None]


def agent_name(agent: str) -> str:
    """The agent of an ``agent`` column value: ``support@1`` (runtime) and ``support``
    (gateway, which knows no version) are one agent."""
    name, sep, version = agent.rpartition("@")
    return name if sep and version.isdigit() else agent


def _check_dimension(by: str) -> None:
    if by not in DIMENSIONS:
        raise InputError(
            f"unknown cost dimension {by!r}", hint=f"use one of: {', '.join(DIMENSIONS)}"
        )


def rollup(
    store: Store,
    by: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Rollup]:
    """Costs grouped by ``by`` (see :data:`DIMENSIONS`), most expensive first.

    ``query``/``trace`` group by trace (the initiating request; its label is the root
    span's name); ``day`` by the UTC date of the model call.
    """
    _check_dimension(by)
    with store.session() as s:
        q = select(SpanRow).where(SpanRow.cost_status.in_(COUNTED))
        if since is not None:
            q = q.where(SpanRow.start_time >= since)
        if until is not None:
            q = q.where(SpanRow.start_time < until)
        cost_spans = list(s.scalars(q))
        trace_ids = sorted({sp.trace_id for sp in cost_spans})
        nodes: dict[str, _Node] = {}
        roots: dict[str, str] = {}
        for i in range(0, len(trace_ids), 500):
            chunk = trace_ids[i : i + 500]
            rows = s.execute(
                select(
                    SpanRow.span_id,
                    SpanRow.trace_id,
                    SpanRow.parent_span_id,
                    SpanRow.name,
                    SpanRow.run_id,
                    SpanRow.session_id,
                    SpanRow.agent,
                    SpanRow.principal,
                    SpanRow.tenant,
                ).where(SpanRow.trace_id.in_(chunk))
            )
            for sid, tid, parent, name, run, session, agent, principal, tenant in rows:
                nodes[sid] = _Node(
                    parent,
                    name,
                    {
                        "run_id": run,
                        "session_id": session,
                        "agent": agent,
                        "principal": principal,
                        "tenant": tenant,
                    },
                )
                if parent is None:
                    roots[tid] = name
    groups: dict[str | None, Rollup] = {}

    def inherited(span_id: str, column: str) -> str | None:
        seen: set[str] = set()
        current: str | None = span_id
        while current is not None and current in nodes and current not in seen:
            seen.add(current)
            node = nodes[current]
            if node.values.get(column):
                return node.values[column]
            current = node.parent
        return None

    for sp in cost_spans:
        key: str | None
        label: str | None = None
        if by in ("query", "trace"):
            key, label = sp.trace_id, roots.get(sp.trace_id)
        elif by == "model":
            key = sp.model
        elif by == "day":
            key = sp.start_time.date().isoformat()
        else:
            key = inherited(sp.span_id, _INHERITED[by])
            if by == "agent" and key is not None:
                key = agent_name(key)
        group = groups.setdefault(key, Rollup(key, label))
        if sp.cost_status == "priced" and sp.cost_usd is not None:
            group.cost_usd += Decimal(sp.cost_usd)
            group.priced_spans += 1
        else:
            group.unpriced_spans += 1
        group.input_tokens += sp.input_tokens or 0
        group.output_tokens += sp.output_tokens or 0
        if sp.model:
            group.models.add(sp.model)
    return sorted(groups.values(), key=lambda g: (-g.cost_usd, -g.unpriced_spans, str(g.key)))


def total(rollups: Iterable[Rollup]) -> Rollup:
    """The sum of several roll-ups."""
    result = Rollup("total")
    for r in rollups:
        result.cost_usd += r.cost_usd
        result.priced_spans += r.priced_spans
        result.unpriced_spans += r.unpriced_spans
        result.input_tokens += r.input_tokens
        result.output_tokens += r.output_tokens
        result.models |= r.models
    return result


@dataclass(frozen=True)
class RepriceReport:
    """What :func:`reprice` changed."""

    spans: int
    changed: int
    unpriced: int

    def to_dict(self) -> dict[str, int]:
        """JSON form."""
        return {"spans": self.spans, "changed": self.changed, "unpriced": self.unpriced}


def reprice(
    store: Store,
    prices: PriceSource | None,
    *,
    since: datetime | None = None,
    only_unknown: bool = False,
    batch: int = 1000,
) -> RepriceReport:
    """Recompute the cost of every span started at or after ``since`` (one transaction).

    ``only_unknown`` prices just the spans still marked ``unknown`` (what ``daytwo
    costs`` does before reporting, so spans stored without a price source get one).
    """
    spans = changed = unpriced = 0
    with store.session(write=True) as s:
        rows = s.execute(
            select(
                SpanRow.span_id,
                SpanRow.start_time,
                SpanRow.attributes,
                SpanRow.cost_usd,
                SpanRow.cost_status,
            ).where(
                SpanRow.cost_status == "unknown"
                if only_unknown
                else or_(SpanRow.cost_status.is_(None), SpanRow.cost_status.in_(COUNTED)),
                SpanRow.start_time >= since if since is not None else SpanRow.span_id.is_not(None),
            )
        ).all()
        updates: list[dict[str, Any]] = []
        for span_id, start, attrs, old_usd, old_status in rows:
            cost = span_cost(attrs or {}, start, prices)
            if cost is None:
                continue
            spans += 1
            usd = None if cost.usd is None else str(cost.usd)
            unpriced += cost.status == "unknown"
            if (usd, cost.status) != (old_usd, old_status):
                changed += 1
                updates.append({"sid": span_id, "usd": usd, "st": cost.status})
        for i in range(0, len(updates), batch):
            for u in updates[i : i + batch]:
                s.execute(
                    update(SpanRow)
                    .where(SpanRow.span_id == u["sid"])
                    .values(cost_usd=u["usd"], cost_status=u["st"])
                    .execution_options(synchronize_session=False)
                )
    return RepriceReport(spans, changed, unpriced)
