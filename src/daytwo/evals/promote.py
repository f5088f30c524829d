"""Promote a traced production run (or an eval result) into a golden case, with provenance.

The run is read through a ``RunSource``; :class:`EvalResultSource` reads the
eval layer's own results, and :mod:`daytwo.evals.bindings` adds the runtime's
runs when that layer is installed. A near-duplicate of an existing case (by
embedding similarity) is refused unless forced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select

from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets, VersionInfo
from daytwo.evals.dedup import Embedder, near_duplicates
from daytwo.exceptions import ConflictError, InputError, NotFoundError
from daytwo.store import Store
from daytwo.store.tables.evals import EvalResult, EvalRun

__all__ = [
    "EvalResultSource",
    "PromotedRun",
    "RunSource",
    "RuntimeRunSource",
    "TraceRunSource",
    "promote",
]


@dataclass(frozen=True)
class PromotedRun:
    """What a run contributes to a golden case."""

    run_id: str
    input: str
    output: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    retrieved_ids: list[str] = field(default_factory=list)
    trace_id: str | None = None
    agent: str = ""
    agent_version: str = ""
    source: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)


class RunSource(Protocol):
    """Finds a run by id; returns None when it does not know the id."""

    def fetch(self, run_id: str) -> PromotedRun | None:
        """The run, or None."""
        ...


class EvalResultSource:
    """Eval results (``eval_results.id``, or prefix) as promotable runs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def fetch(self, run_id: str) -> PromotedRun | None:
        """The eval result with this id (or unique prefix of at least 6 characters)."""
        from daytwo.store.tables.evals import EvalCase, EvalMetric

        with self.store.session() as s:
            row = s.get(EvalResult, run_id)
            if row is None and len(run_id) >= 6:
                hits = list(s.scalars(select(EvalResult).where(EvalResult.id.startswith(run_id))))
                row = hits[0] if len(hits) == 1 else None
            if row is None:
                return None
            case = s.get(EvalCase, row.case_id)
            run = s.get(EvalRun, row.run_id)
            scores = {
                m.name: m.value
                for m in s.scalars(select(EvalMetric).where(EvalMetric.result_id == row.id))
                if m.value is not None
            }
            out = row.output or {}
            return PromotedRun(
                run_id=row.id,
                input=str(case.data["input"]) if case else "",
                output=out.get("output"),
                tool_calls=list(out.get("tool_calls") or []),
                retrieved_ids=list(out.get("retrieved_ids") or []),
                trace_id=row.trace_id,
                agent=run.agent if run else "",
                agent_version=run.agent_version if run else "",
                source="eval_result",
                scores=scores,
            )


class RuntimeRunSource:
    """Runs of the durable runtime (``runs`` table of the runtime layer), when it is installed.

    The case keeps the run's real trace id, all of its inputs, and what the trace
    shows it did: the tool calls (with arguments when content capture was on) and the
    ids retrieved (from the retrieval spans, else their decision records).
    """

    def __init__(self, store: Store, *, input_key: str = "question") -> None:
        self.store = store
        self.input_key = input_key

    def fetch(self, run_id: str) -> PromotedRun | None:
        """The runtime run with this id, or None (also when the runtime layer is absent)."""
        try:
            from daytwo.store.tables.runtime import RunRecord
        except ImportError:
            return None
        from daytwo.evals.trace_components import read_components
        from daytwo.store.tables.tracing import DecisionRow, SpanRow

        with self.store.session() as s:
            row = s.get(RunRecord, run_id)
            if row is None:
                return None
            inputs = dict(row.inputs or {})
            answer = (row.outputs or {}).get("answer")
            if isinstance(answer, dict):
                answer = answer.get("answer", answer)
            trace_id = s.scalar(
                select(SpanRow.trace_id)
                .where(SpanRow.run_id == row.id)
                .order_by(SpanRow.start_time)
                .limit(1)
            )
            decided: list[str] = []
            if trace_id is not None:
                for data in s.scalars(
                    select(DecisionRow.data).where(
                        DecisionRow.trace_id == trace_id, DecisionRow.kind == "retrieval"
                    )
                ):
                    decided += [str(d) for d in (data or {}).get("doc_ids", [])]
            agent, version = row.agent_name, str(row.agent_version)
        tool_calls: list[dict[str, Any]] = []
        retrieved: list[str] = []
        if trace_id is not None:
            comp = read_components(self.store, [trace_id])[trace_id]
            tool_calls, retrieved = comp.tool_calls, comp.retrieved_ids or decided
        keys = (self.input_key, "question", "input", "query", "message", "q")
        return PromotedRun(
            run_id=run_id,
            input=_as_text(inputs, keys),
            output=None if answer is None else str(answer),
            tool_calls=tool_calls,
            retrieved_ids=retrieved,
            trace_id=trace_id,
            agent=agent,
            agent_version=version,
            source="runtime_run",
            scores={},
            inputs=inputs,
        )


def _as_text(value: Any, keys: tuple[str, ...] = ("question", "input", "query", "message")) -> str:
    """The user's text from a recorded input (a string, or a dict holding one)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        for key in keys:
            if isinstance(value.get(key), str):
                return str(value[key])
        strings = [v for v in value.values() if isinstance(v, str)]
        if len(strings) == 1:
            return strings[0]
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False)


class TraceRunSource:
    """Traces sent by external agents (OTLP): ``otlp-<trace id>`` or the bare trace id.

    Input and output come from the spans' ``input.value``/``output.value`` (the root's
    first), tool calls and retrieved ids from tool and retrieval spans, scores from
    the trace's scores (``daytwo.sdk.score``).
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def fetch(self, run_id: str) -> PromotedRun | None:
        """The trace as a promotable run, or None when no span of it is stored."""
        import re

        from daytwo.evals.trace_components import read_components
        from daytwo.store.tables.tracing import ScoreRow, SpanRow

        trace_id = run_id.removeprefix("otlp-").lower()
        if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
            return None
        comp = read_components(self.store, [trace_id])[trace_id]
        if comp.spans == 0:
            return None
        with self.store.session() as s:
            agent = s.scalar(
                select(SpanRow.agent)
                .where(SpanRow.trace_id == trace_id, SpanRow.agent.is_not(None))
                .limit(1)
            )
            scores = {
                r.name: r.value_num
                for r in s.scalars(select(ScoreRow).where(ScoreRow.trace_id == trace_id))
                if r.value_num is not None
            }
        output = comp.output
        return PromotedRun(
            run_id=f"otlp-{trace_id}",
            input=_as_text(comp.input),
            output=None if output is None else _as_text(output, ("answer", "output")),
            tool_calls=comp.tool_calls,
            retrieved_ids=comp.retrieved_ids,
            trace_id=trace_id,
            agent=agent or "",
            agent_version="external",
            source="otlp_trace",
            scores=scores,
        )


def promote(
    store: Store,
    run_id: str,
    *,
    set_name: str,
    tags: list[str],
    sources: list[RunSource] | None = None,
    expected_output: str | None = None,
    embedder: Embedder | None = None,
    threshold: float = 0.9,
    force: bool = False,
) -> tuple[VersionInfo, Case]:
    """Add the run as a case of ``set_name`` (new version); refuse near-duplicates unless forced."""
    sets = GoldenSets(store)
    existing = sets.cases(set_name)  # NotFoundError for an unknown set
    run: PromotedRun | None = None
    for src in sources or [EvalResultSource(store)]:
        run = src.fetch(run_id)
        if run is not None:
            break
    if run is None:
        raise NotFoundError(
            f"no traced run or eval result {run_id!r}",
            hint="pass a run id from `daytwo eval show RUN --cases` or the runtime's run list",
        )
    if not run.input.strip():
        raise InputError(f"run {run_id} has no user input to promote")
    if not force and existing:
        (_j, sim, other) = near_duplicates(
            [run.input], [c.data["input"] for c in existing], embedder=embedder
        )[0]
        if sim >= threshold:
            match = next(c.key for c in existing if c.data["input"] == other)
            raise ConflictError(
                f"run {run_id[:12]} is a near-duplicate (similarity {sim:.2f}) of case {match!r}",
                hint="pass --force to add it anyway, or tag the existing case",
            )
    case = Case(
        key=f"prod-{run.run_id[:12]}",
        input=run.input,
        expected_output=expected_output,
        tags=sorted(set(tags) | {"promoted"}),
        metadata={
            "observed_inputs": run.inputs,
            "observed_output": run.output,
            "observed_tool_calls": run.tool_calls,
            "observed_retrieved_ids": run.retrieved_ids,
        },
    )
    provenance = {
        "source": run.source or "run",
        "run_id": run.run_id,
        "trace_id": run.trace_id,
        "agent": run.agent,
        "agent_version": run.agent_version,
        "scores": run.scores,
    }
    info = sets.add(set_name, [case], note=f"promoted {run.run_id[:12]}", provenance=provenance)
    return info, case
