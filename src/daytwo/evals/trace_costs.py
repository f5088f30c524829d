"""Cost, tokens and latency of eval cases, read from the trace (not from the runner's counts).

Each case runs under its own root span ``eval case {key}`` (its own trace). After the
run, the tracing layer's cost ledger (:func:`daytwo.tracing.ledger.rollup`) gives the
tokens and exact cost of the model calls in that trace, and the case span's stored
duration is the latency. A durable runtime run that was traced apart from the case
(it carries ``daytwo.run.id``) is found by its run id instead. A case whose trace was
not stored gets no values (recorded as missing), never zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from daytwo.store import Store
from daytwo.store.tables.tracing import SpanRow
from daytwo.tracing import current_handle, setup_tracing
from daytwo.tracing.ledger import Rollup, rollup

__all__ = ["CASE_SPAN", "TraceCost", "ensure_tracing", "trace_costs"]

CASE_SPAN = "eval case"
"""Name prefix of the root span each case runs under."""


@dataclass(frozen=True)
class TraceCost:
    """What the trace of one case says it cost; ``None`` fields were not measurable."""

    trace_id: str | None
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    cost_spans: int
    unpriced_spans: int
    source: str

    def detail(self) -> dict[str, Any]:
        """Provenance stored with each cost metric."""
        return {
            "source": self.source,
            "trace_id": self.trace_id,
            "cost_spans": self.cost_spans,
            "unpriced_spans": self.unpriced_spans,
        }


def ensure_tracing(store: Store) -> None:
    """Make sure spans of this process land in ``store`` (keeps an existing set-up for it)."""
    handle = current_handle()
    if handle is None or not handle.active or handle.store is not store:
        setup_tracing(store)


def _pick(trace: Rollup | None, run: Rollup | None) -> Rollup | None:
    if trace is not None and (trace.priced_spans or trace.unpriced_spans):
        return trace
    return run or trace


def trace_costs(
    store: Store, cases: list[tuple[str, str | None, str | None]], since: datetime
) -> dict[str, TraceCost]:
    """Per result id: the cost of ``(result_id, trace_id, runtime_run_id)`` from stored spans."""
    handle = current_handle()
    if handle is not None and handle.active:
        handle.flush()
    by_trace = {r.key: r for r in rollup(store, "trace", since=since)}
    by_run = {r.key: r for r in rollup(store, "run", since=since)}
    trace_ids = sorted({t for _, t, _ in cases if t})
    durations: dict[str, float] = {}
    with store.session() as s:
        for i in range(0, len(trace_ids), 500):
            rows = s.execute(
                select(SpanRow.trace_id, SpanRow.duration_ms).where(
                    SpanRow.trace_id.in_(trace_ids[i : i + 500]),
                    SpanRow.parent_span_id.is_(None),
                    SpanRow.name.startswith(CASE_SPAN),
                )
            )
            durations.update({t: float(d) for t, d in rows})
    out: dict[str, TraceCost] = {}
    for result_id, trace_id, run_id in cases:
        if trace_id is None or trace_id not in durations:
            out[result_id] = TraceCost(trace_id, None, None, None, None, 0, 0, "trace not stored")
            continue
        r = _pick(by_trace.get(trace_id), by_run.get(run_id) if run_id else None)
        if r is None:  # a traced case without model calls or paid tools
            out[result_id] = TraceCost(trace_id, durations[trace_id], 0, 0, 0.0, 0, 0, "trace")
            continue
        source = "trace" if r.key == trace_id else "trace (runtime run)"
        out[result_id] = TraceCost(
            trace_id,
            durations[trace_id],
            r.input_tokens,
            r.output_tokens,
            None if r.unpriced_spans else float(r.cost_usd),
            r.priced_spans + r.unpriced_spans,
            r.unpriced_spans,
            source,
        )
    return out
