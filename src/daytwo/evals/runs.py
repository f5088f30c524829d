"""Eval runs: cases × repeats through an ``AgentRunner``, concurrently, every metric stored.

Each case result and each of its metrics is written as it completes (a long
run that dies keeps what it measured; its status stays ``running`` →
``failed``). The run summary aggregates per metric, per component and per
failure-mode tag; a case's repeats are averaged before aggregating, so every
case weighs the same.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link
from sqlalchemy import select

from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets, StoredCase
from daytwo.evals.runner import AgentResult, AgentRunner
from daytwo.evals.scoring import MetricValue, Scorer
from daytwo.evals.trace_costs import CASE_SPAN, ensure_tracing, trace_costs
from daytwo.exceptions import InputError, NotFoundError
from daytwo.store import Store, utcnow
from daytwo.store.tables.evals import EvalMetric, EvalResult, EvalRun

__all__ = ["EvalRuns", "RunInfo"]

_tracer = trace.get_tracer("daytwo.evals")
_log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RunInfo:
    """A stored run and its summary."""

    id: str
    kind: str
    agent: str
    agent_version: str
    set_name: str
    set_version: int
    repeats: int
    status: str
    summary: dict[str, Any]
    config: dict[str, Any]
    started_at: str
    finished_at: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return dict(self.__dict__)


def _info(row: EvalRun) -> RunInfo:
    return RunInfo(
        row.id,
        row.kind,
        row.agent,
        row.agent_version,
        row.set_name,
        row.set_version,
        row.repeats,
        row.status,
        dict(row.summary or {}),
        dict(row.config or {}),
        row.started_at.isoformat(),
        row.finished_at.isoformat() if row.finished_at else None,
    )


class EvalRuns:
    """Run golden sets through agents and read the stored runs back."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sets = GoldenSets(store)

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        runner: AgentRunner,
        set_ref: str,
        *,
        repeats: int = 1,
        concurrency: int = 4,
        scorer: Scorer | None = None,
        progress: Progress | None = None,
        config: dict[str, Any] | None = None,
    ) -> RunInfo:
        """Run every case of the set version ``repeats`` times; return the finished run."""
        info = self.start(runner, set_ref, repeats=repeats, concurrency=concurrency, config=config)
        return self.execute(
            info.id, runner, concurrency=concurrency, scorer=scorer, progress=progress
        )

    def start(
        self,
        runner: AgentRunner,
        set_ref: str,
        *,
        repeats: int = 1,
        concurrency: int = 4,
        config: dict[str, Any] | None = None,
    ) -> RunInfo:
        """Record a ``running`` run of ``runner`` on the set version (nothing executes yet)."""
        if repeats < 1 or concurrency < 1:
            raise InputError("repeats and concurrency must be at least 1")
        version = self.sets.resolve(set_ref)
        if not version.case_count:
            raise InputError(
                f"golden set {version.set_name}@{version.version} has no cases",
                hint="add cases before running it",
            )
        with self.store.session(write=True) as s:
            row = EvalRun(
                kind="eval",
                agent=runner.name,
                agent_version=runner.version,
                set_name=version.set_name,
                set_version=version.version,
                repeats=repeats,
                status="running",
                config=config or {},
                summary={},
            )
            s.add(row)
            s.flush()
            return _info(row)

    def execute_in_background(
        self,
        run_id: str,
        runner: AgentRunner,
        *,
        concurrency: int = 4,
        scorer: Scorer | None = None,
    ) -> None:
        """:meth:`execute` a started run on a thread; poll :meth:`get` for its status."""

        def work() -> None:
            try:
                self.execute(run_id, runner, concurrency=concurrency, scorer=scorer)
            except Exception:  # recorded as status "failed" by execute
                _log.exception("eval run %s failed", run_id)

        threading.Thread(target=work, name=f"eval-run-{run_id[:8]}", daemon=True).start()

    def execute(
        self,
        run_id: str,
        runner: AgentRunner,
        *,
        concurrency: int = 4,
        scorer: Scorer | None = None,
        progress: Progress | None = None,
    ) -> RunInfo:
        """Execute a started run: every case x repeat, metrics stored as they complete."""
        info = self.get(run_id)
        cases = self.sets.cases(info.set_name, info.set_version)
        scorer = scorer or Scorer()
        ensure_tracing(self.store)
        with self.store.session() as s:
            started = s.scalar(select(EvalRun.started_at).where(EvalRun.id == run_id))
        jobs = [(c, r) for r in range(info.repeats) for c in cases]
        done = 0
        lock = threading.Lock()
        with _tracer.start_as_current_span("eval run") as span:
            span.set_attribute("daytwo.eval.run_id", run_id)
            span.set_attribute("daytwo.agent.name", runner.name)
            span.set_attribute("daytwo.agent.version", runner.version)
            span.set_attribute("daytwo.eval.set", f"{info.set_name}@{info.set_version}")
            link = Link(span.get_span_context())
            try:
                with ThreadPoolExecutor(max_workers=concurrency) as pool:
                    futures = [
                        pool.submit(self._one, run_id, runner, scorer, c, rep, link)
                        for c, rep in jobs
                    ]
                    for fut in as_completed(futures):
                        fut.result()
                        with lock:
                            done += 1
                        if progress:
                            progress(done, len(jobs))
            except BaseException:
                self._finish(run_id, "failed")
                raise
        self._record_trace_components(
            run_id, cases, scorer, float(getattr(runner, "trace_wait_s", 0.0) or 0.0)
        )
        self._record_trace_costs(run_id, started)
        return self._finish(run_id, "completed")

    def _one(
        self,
        run_id: str,
        runner: AgentRunner,
        scorer: Scorer,
        stored: StoredCase,
        repeat: int,
        link: Link,
    ) -> None:
        case = stored.case
        # Each case is the root of its own trace, so the ledger can cost it alone.
        with _tracer.start_as_current_span(
            f"{CASE_SPAN} {stored.key}",
            context=otel_context.Context(),
            links=[link],
            attributes={
                "daytwo.eval.run_id": run_id,
                "daytwo.eval.case": stored.key,
                "daytwo.eval.repeat": repeat,
            },
        ) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            try:
                result = runner.run(case)
            except Exception as exc:  # a runner that raises is an errored case, not a dead run
                result = AgentResult(output=None, error=f"{type(exc).__name__}: {exc}")
        if result.trace_id and result.trace_id != trace_id:
            result.extra.setdefault("run_id", result.trace_id)  # e.g. the durable run's id
        result.trace_id = trace_id
        values = scorer.score(case, result)
        self._write(run_id, stored, repeat, result, values)

    def _record_trace_components(
        self, run_id: str, cases: list[StoredCase], scorer: Scorer, wait_s: float
    ) -> None:
        """Tool calls and retrieved documents an agent did not return, from its trace.

        An external agent exports its spans into the case's trace; they may land after
        it answered, so wait up to ``wait_s`` for them. Results that already carry tool
        calls or retrieved ids keep them; the others get the trace's, and their
        retrieval and tool metrics are recomputed (``detail.source = "trace"``).
        """
        from sqlalchemy import delete

        from daytwo.evals.trace_components import read_components, wait_for_spans

        results = [r for r in self.results(run_id) if r.trace_id]
        if not results:
            return
        trace_ids = [r.trace_id for r in results if r.trace_id]
        wait_for_spans(self.store, trace_ids, wait_s)  # flushes this process's spans too
        found = read_components(self.store, trace_ids)
        by_case = {c.id: c for c in cases}
        with self.store.session(write=True) as s:
            for r in results:
                comp = found.get(r.trace_id or "")
                stored = by_case.get(r.case_id)
                out = dict(r.output or {})
                if comp is None or stored is None:
                    continue
                changed = False
                if not out.get("tool_calls") and comp.tool_calls:
                    out["tool_calls"], changed = comp.tool_calls, True
                if not out.get("retrieved_ids") and comp.retrieved_ids:
                    out["retrieved_ids"], changed = comp.retrieved_ids, True
                    out["retrieved_context"] = comp.retrieved_context
                if not changed:
                    continue
                row = s.get(EvalResult, r.id)
                assert row is not None
                row.output = out
                result = AgentResult(
                    output=out.get("output"),
                    tool_calls=list(out.get("tool_calls") or []),
                    retrieved_ids=list(out.get("retrieved_ids") or []),
                )
                s.execute(
                    delete(EvalMetric).where(
                        EvalMetric.result_id == r.id,
                        EvalMetric.component.in_(("retrieval", "tools")),
                    )
                )
                for v in scorer.component_metrics(stored.case, result):
                    s.add(
                        EvalMetric(
                            run_id=run_id,
                            result_id=r.id,
                            case_key=r.case_key,
                            repeat=r.repeat,
                            component=v.component,
                            name=v.name,
                            value=v.value,
                            detail={**v.detail, "source": "trace"},
                        )
                    )

    def _record_trace_costs(self, run_id: str, since: Any) -> None:
        """Latency, tokens and cost of every case from its stored trace (cost component)."""
        results = self.results(run_id)
        costs = trace_costs(
            self.store,
            [(r.id, r.trace_id, (r.output.get("extra") or {}).get("run_id")) for r in results],
            since,
        )
        with self.store.session(write=True) as s:
            for r in results:
                c = costs[r.id]
                row = s.get(EvalResult, r.id)
                assert row is not None
                row.latency_ms = c.latency_ms or 0.0
                row.input_tokens = c.input_tokens or 0
                row.output_tokens = c.output_tokens or 0
                row.cost_usd = c.cost_usd or 0.0
                total = (
                    None
                    if c.input_tokens is None or c.output_tokens is None
                    else float(c.input_tokens + c.output_tokens)
                )
                for name, value in (
                    ("latency_ms", c.latency_ms),
                    ("input_tokens", None if c.input_tokens is None else float(c.input_tokens)),
                    ("output_tokens", None if c.output_tokens is None else float(c.output_tokens)),
                    ("total_tokens", total),
                    ("cost_usd", c.cost_usd),
                ):
                    s.add(
                        EvalMetric(
                            run_id=run_id,
                            result_id=r.id,
                            case_key=r.case_key,
                            repeat=r.repeat,
                            component="cost",
                            name=name,
                            value=value,
                            detail=c.detail(),
                        )
                    )

    def _write(
        self,
        run_id: str,
        stored: StoredCase,
        repeat: int,
        result: AgentResult,
        values: list[MetricValue],
    ) -> None:
        with self.store.session(write=True) as s:
            res = EvalResult(
                run_id=run_id,
                case_id=stored.id,
                case_key=stored.key,
                repeat=repeat,
                output=result.as_output(),
                error=result.error,
                trace_id=result.trace_id,
            )
            s.add(res)
            s.flush()
            s.add_all(
                EvalMetric(
                    run_id=run_id,
                    result_id=res.id,
                    case_key=stored.key,
                    repeat=repeat,
                    component=v.component,
                    name=v.name,
                    value=v.value,
                    detail=v.detail,
                )
                for v in values
            )

    def _finish(self, run_id: str, status: str) -> RunInfo:
        summary = self.summarize(run_id)
        with self.store.session(write=True) as s:
            row = s.get(EvalRun, run_id)
            assert row is not None
            row.status = status
            row.finished_at = utcnow()
            row.summary = summary
            s.flush()
            return _info(row)

    # -- reading ---------------------------------------------------------------------------

    def get(self, run_id: str) -> RunInfo:
        """The run with this id (or unique id prefix)."""
        with self.store.session() as s:
            row = s.get(EvalRun, run_id)
            if row is None and len(run_id) >= 4:
                hits = list(s.scalars(select(EvalRun).where(EvalRun.id.startswith(run_id))))
                row = hits[0] if len(hits) == 1 else None
            if row is None:
                raise NotFoundError(
                    f"eval run {run_id!r} does not exist",
                    hint="list runs with `daytwo eval runs`",
                )
            return _info(row)

    def list_runs(self, *, agent: str | None = None, set_name: str | None = None) -> list[RunInfo]:
        """Runs, newest first."""
        with self.store.session() as s:
            q = select(EvalRun).order_by(EvalRun.started_at.desc(), EvalRun.id)
            if agent:
                q = q.where(EvalRun.agent == agent)
            if set_name:
                q = q.where(EvalRun.set_name == set_name)
            return [_info(r) for r in s.scalars(q)]

    def previous(self, run_id: str) -> RunInfo | None:
        """The completed run of the same set just before this one (any agent version)."""
        run = self.get(run_id)
        with self.store.session() as s:
            started = s.scalar(select(EvalRun.started_at).where(EvalRun.id == run.id))
            row = s.scalar(
                select(EvalRun)
                .where(
                    EvalRun.set_name == run.set_name,
                    EvalRun.kind == "eval",
                    EvalRun.status == "completed",
                    EvalRun.id != run.id,
                    EvalRun.started_at <= started,
                )
                .order_by(EvalRun.started_at.desc())
                .limit(1)
            )
            return _info(row) if row else None

    def metric_rows(self, run_id: str) -> list[EvalMetric]:
        """Every metric row of a run."""
        with self.store.session() as s:
            return list(s.scalars(select(EvalMetric).where(EvalMetric.run_id == run_id)))

    def results(self, run_id: str) -> list[EvalResult]:
        """Every result row of a run."""
        with self.store.session() as s:
            return list(
                s.scalars(
                    select(EvalResult)
                    .where(EvalResult.run_id == run_id)
                    .order_by(EvalResult.case_key, EvalResult.repeat)
                )
            )

    def case_values(self, run_id: str, metric: str) -> dict[str, float]:
        """Per-case value of a metric (mean over repeats; judge failures left out here)."""
        sums: dict[str, list[float]] = defaultdict(list)
        for row in self.metric_rows(run_id):
            if row.name == metric and row.value is not None:
                sums[row.case_key].append(row.value)
        return {k: sum(v) / len(v) for k, v in sums.items()}

    def summarize(self, run_id: str) -> dict[str, Any]:
        """Means per metric (over cases), per component and per tag, plus counts."""
        rows = self.metric_rows(run_id)
        results = self.results(run_id)
        tags_of = self._tags(results)
        per_case: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        nulls: dict[str, int] = defaultdict(int)
        for r in rows:
            if r.value is None:
                nulls[r.name] += 1
                continue
            per_case[(r.component, r.name, r.case_key)].append(r.value)
        metrics: dict[str, dict[str, Any]] = {}
        by_tag: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        grouped: dict[tuple[str, str], list[float]] = defaultdict(list)
        for (component, name, key), vals in per_case.items():
            mean = sum(vals) / len(vals)
            grouped[(component, name)].append(mean)
            for tag in tags_of.get(key, []):
                by_tag[tag][name].append(mean)
        for (component, name), vals in sorted(grouped.items()):
            metrics[name] = {
                "component": component,
                "mean": sum(vals) / len(vals),
                "cases": len(vals),
                "missing": nulls.get(name, 0),
            }
        for name, count in nulls.items():
            metrics.setdefault(name, {"component": "judge", "mean": None, "cases": 0})
            metrics[name]["missing"] = count
        return {
            "cases": len({r.case_key for r in results}),
            "results": len(results),
            "errors": sum(1 for r in results if r.error),
            "metrics": metrics,
            "by_tag": {
                tag: {n: sum(v) / len(v) for n, v in sorted(names.items())}
                for tag, names in sorted(by_tag.items())
            },
        }

    def _tags(self, results: list[EvalResult]) -> dict[str, list[str]]:
        from daytwo.store.tables.evals import EvalCase

        ids = {r.case_id for r in results}
        if not ids:
            return {}
        with self.store.session() as s:
            return {
                c.case_key: list(c.data.get("tags", []))
                for c in s.scalars(select(EvalCase).where(EvalCase.id.in_(ids)))
            }

    def record_load(
        self, runner: AgentRunner, summary: dict[str, Any], config: dict[str, Any]
    ) -> RunInfo:
        """Store a load test's figures as a run of kind ``load``."""
        with self.store.session(write=True) as s:
            row = EvalRun(
                kind="load",
                agent=runner.name,
                agent_version=runner.version,
                set_name=str(config.get("set", "")),
                set_version=int(config.get("set_version", 0)),
                repeats=1,
                status="completed",
                config=config,
                summary=summary,
                finished_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return _info(row)


def cases_for_load(sets: GoldenSets, set_ref: str) -> list[Case]:
    """The cases of a set version as plain cases (inputs for a load test)."""
    info = sets.resolve(set_ref)
    return [c.case for c in sets.cases(info.set_name, info.version)]
