"""The eval run view: the per-case table with filters, each case's trace, and the
paired-bootstrap interval of every metric against a baseline run.

Filters (in the URL, so a view can be shared and exported): ``tag`` (a failure-mode
tag of the case), ``metric`` (the metric shown per case and highlighted in the chart),
``below`` (only cases whose value of that metric is under it) and ``errors=1`` (only
cases whose agent call failed). The baseline is ``?baseline=RUN`` or the run before
this one of the same agent and set. Intervals are ``evals.gates.gate`` (the release
gate's own computation) at 2,000 resamples.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import Response

from daytwo.exceptions import DaytwoError, InputError
from daytwo.server.auth import Principal
from daytwo.server.charts import interval_chart
from daytwo.server.dashboard import page, render
from daytwo.server.tenancy import tenant_clause

__all__: list[str] = []

RESAMPLES = 2000
_NOT_CASE_METRICS = {"judge_failure"}


def _float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise InputError(
            f"{name}={raw[:20]!r} is not a number", hint=f"for example ?{name}=0.5"
        ) from None


def _run_of(result: Any) -> str | None:
    """The run behind a case: a daytwo agent's durable run (``extra.run_id``) or the
    run an external agent's trace became (``otlp-<trace id>``)."""
    extra = (result.output or {}).get("extra") or {}
    run_id = extra.get("run_id")
    if isinstance(run_id, str) and run_id:
        return run_id
    return f"otlp-{result.trace_id}" if result.trace_id else None


def _run_pages(store: Any, tenant: str, run_ids: set[str]) -> set[str]:
    """The ids among ``run_ids`` of runs of ``tenant`` (their pages show the trace)."""
    from daytwo.store.tables.runtime import RunRecord

    if not run_ids:
        return set()
    with store.session() as s:
        return set(
            s.scalars(
                sa.select(RunRecord.id).where(
                    RunRecord.id.in_(sorted(run_ids)), tenant_clause(RunRecord.principal, tenant)
                )
            )
        )


def _trace_pages(store: Any, tenant: str, trace_ids: set[str]) -> set[str]:
    """The ids among ``trace_ids`` of traces holding spans of ``tenant`` (their page
    shows those spans)."""
    from daytwo.store.tables.tracing import SpanRow

    if not trace_ids:
        return set()
    with store.session() as s:
        return set(
            s.scalars(
                sa.select(SpanRow.trace_id)
                .where(
                    SpanRow.trace_id.in_(sorted(trace_ids)),
                    sa.or_(SpanRow.tenant == tenant, tenant_clause(SpanRow.principal, tenant)),
                )
                .distinct()
            )
        )


@page("/evals/runs/{run_id}", title="Eval run")
def eval_run_page(request: Request, principal: Principal, run_id: str) -> Response:
    from daytwo.evals.gates import gate
    from daytwo.evals.metrics import LOWER_IS_BETTER
    from daytwo.evals.runs import EvalRuns
    from daytwo.server.routes.evals import _run

    store = request.app.state.store
    run = _run(store, principal, run_id[:64])
    runs = EvalRuns(store)
    q = request.query_params
    base_id = q.get("baseline") or None
    baseline = _run(store, principal, base_id[:64]) if base_id else runs.previous(run.id)
    if baseline is not None and baseline.id == run.id:
        baseline = None
    if baseline is not None:
        baseline = _run(store, principal, baseline.id)  # the previous run may be another tenant's

    results = runs.results(run.id)
    tags_of = runs._tags(results)
    metric_names = sorted(
        n for n in (run.summary.get("metrics") or {}) if n not in _NOT_CASE_METRICS
    )
    values: dict[str, dict[str, float]] = {m: runs.case_values(run.id, m) for m in metric_names}
    base_values = {m: runs.case_values(baseline.id, m) for m in metric_names} if baseline else {}
    metric = q.get("metric") or next(
        (m for m in ("fuzzy_match", "fact_recall", "tool_call_accuracy") if m in values),
        metric_names[0] if metric_names else None,
    )
    if metric is not None and metric not in values:
        raise InputError(
            f"run {run.id[:12]} has no metric {metric[:64]!r}",
            hint=f"metrics of this run: {', '.join(metric_names) or '(none)'}",
        )
    tag = q.get("tag") or None
    all_tags = sorted({t for ts in tags_of.values() for t in ts})
    if tag is not None and tag not in all_tags:
        raise InputError(
            f"no case of run {run.id[:12]} has the tag {tag[:64]!r}",
            hint=f"tags of this run: {', '.join(all_tags) or '(none)'}",
        )
    below = _float_param(request, "below")
    errors_only = q.get("errors") == "1"

    by_case: dict[str, list[Any]] = defaultdict(list)
    for r in results:
        by_case[r.case_key].append(r)
    behind = {r.id: _run_of(r) for r in results}
    visible_runs = _run_pages(store, principal.tenant, {v for v in behind.values() if v})
    visible_traces = _trace_pages(
        store, principal.tenant, {r.trace_id for r in results if r.trace_id}
    )
    cases = []
    for key, reps in sorted(by_case.items()):
        value = values.get(metric or "", {}).get(key)
        if tag is not None and tag not in tags_of.get(key, []):
            continue
        if below is not None and (value is None or value >= below):
            continue
        errs = [r.error for r in reps if r.error]
        if errors_only and not errs:
            continue
        old = base_values.get(metric or "", {}).get(key)
        first = reps[0]
        run_of_case = behind.get(first.id)
        cases.append(
            {
                "key": key,
                "tags": tags_of.get(key, []),
                "value": value,
                "baseline": old,
                "delta": value - old if value is not None and old is not None else None,
                "error": errs[0] if errs else None,
                "latency_ms": sum(r.latency_ms for r in reps) / len(reps),
                "cost_usd": sum(r.cost_usd for r in reps) / len(reps),
                "trace_id": first.trace_id,
                "trace_page": first.trace_id in visible_traces,
                "run_id": run_of_case if run_of_case in visible_runs else None,
                "repeats": len(reps),
            }
        )

    quality: list[tuple[str, float, float, float]] = []
    usage: list[tuple[str, float, float, float]] = []
    gate_note = None
    if baseline is not None:
        for m in metric_names:
            try:
                g = gate(
                    store, candidate=run.id, baseline=baseline.id, metric=m, resamples=RESAMPLES
                )
            except DaytwoError as exc:
                gate_note = exc.message
                continue
            # The gate flips lower-is-better metrics: right of zero is always better.
            label = f"{m} (flipped)" if m in LOWER_IS_BETTER else m
            row = (label, g.stats.ci_low, g.stats.mean_delta, g.stats.ci_high)
            (usage if m in LOWER_IS_BETTER else quality).append(row)
    return render(
        request,
        "evalrun.html",
        principal,
        title=f"Eval run {run.id[:8]}",
        active="/evals",
        run=run,
        baseline=baseline,
        cases=cases,
        total_cases=len(by_case),
        metric=metric,
        metrics=metric_names,
        tag=tag,
        tags=all_tags,
        below=below,
        errors_only=errors_only,
        # Scores share one axis; cost, latency, tokens and errors have units of their
        # own, so each gets its own small chart.
        chart=interval_chart(quality) if baseline is not None and quality else None,
        usage_charts=[interval_chart([row]) for row in usage] if baseline is not None else [],
        gate_note=gate_note,
        lower_is_better=metric in LOWER_IS_BETTER if metric else False,
    )
