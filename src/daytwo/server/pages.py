"""Dashboard pages of the runs and agents: list with filters, run page with waterfall and audit."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from daytwo.server.auth import Principal, role_at_least
from daytwo.server.dashboard import page, render
from daytwo.server.routes.runs import (
    list_runs,
    owned_run,
    run_audit,
    run_waterfall,
    trace_waterfall,
)

__all__: list[str] = []

STATUSES = ["queued", "running", "waiting", "succeeded", "failed", "cancelled"]


def _tenant_agents(request: Request, tenant: str) -> list[Any]:
    """The versions of the agents ``tenant`` owns or was granted."""
    from daytwo.runtime.registry import AgentRegistry
    from daytwo.server.ownership import visible

    store = request.app.state.store
    agents = AgentRegistry(store).list()
    names = set(visible(store, "agent", {a.name for a in agents}, tenant))
    return [a for a in agents if a.name in names]


def _agent_names(request: Request, tenant: str) -> list[str]:
    return sorted({a.name for a in _tenant_agents(request, tenant)})


@page("/runs", title="Runs", nav="Runs")
def runs_page(request: Request, principal: Principal) -> Response:
    agent = request.query_params.get("agent") or None
    status = request.query_params.get("status") or None
    if status not in STATUSES:
        status = None
    runs = list_runs(request.app.state.store, principal.tenant, agent=agent, status=status)
    agents = _agent_names(request, principal.tenant)
    return render(
        request,
        "runs.html",
        principal,
        title="Runs",
        runs=runs,
        agents=agents,
        agent=agent,
        status=status,
        statuses=STATUSES,
        can_start=role_at_least(principal.role, "operator")
        and request.app.state.runtime is not None,
        default_inputs=json.dumps({"question": "Where is my order?", "order_id": "A-1001"}),
    )


def _kind_of(step: Any) -> str:
    op = step.operation or ""
    if op == "chat" or step.name.startswith("chat "):
        return "llm"
    if op == "execute_tool" or step.name.startswith("execute_tool "):
        return "tool"
    if op == "retrieval" or step.name.startswith("retrieve "):
        return "retrieve"
    return "other"


@page("/runs/{run_id}", title="Run")
def run_page(request: Request, principal: Principal, run_id: str) -> Response:
    store = request.app.state.store
    owned_run(store, principal, run_id)
    runtime = request.app.state.runtime
    if runtime is not None:
        run = runtime.show(run_id, steps=False)
    else:
        run = list_runs(store, principal.tenant, run_id=run_id)[0]  # owned_run checked it
    explanation = run_waterfall(store, run_id)
    total = explanation.total_ms or 1.0
    decisions: list[dict[str, Any]] = [
        {"kind": d.kind, "summary": d.summary} for st in explanation.steps for d in st.decisions
    ]
    if not decisions:
        decisions = [
            {"kind": d.get("kind", ""), "summary": d.get("summary", "")}
            for d in run.get("decisions") or []
            if isinstance(d, dict)
        ]
    answer = (run.get("outputs") or {}).get("answer")
    # The cost ledger prices the run's model and tool spans as they are stored; the run
    # record only knows what the runtime priced itself (nothing for an unpriced client).
    priced = [
        Decimal(st.cost_usd)
        for st in explanation.steps
        if st.cost_status == "priced" and st.cost_usd is not None
    ]
    unknown = any(st.cost_status == "unknown" for st in explanation.steps)
    cost = f"${sum(priced, Decimal(0)):.6f}" if priced else f"${float(run['cost_usd']):.6f}"
    if unknown:
        cost += " + calls without a known price"
    return render(
        request,
        "run.html",
        principal,
        title=f"Run {run_id[:12]}",
        active="/runs",
        run=run,
        cost=cost,
        explanation=explanation,
        decisions=decisions,
        audit=run_audit(request, run_id),
        answer=json.dumps(answer, indent=2, default=str) if answer is not None else "—",
        can_operate=role_at_least(principal.role, "operator") and runtime is not None,
        kind_of=_kind_of,
        pct=lambda ms: round(max(0.0, min(100.0, 100.0 * ms / total)), 3),
    )


def _ledger_cost(steps: list[Any]) -> str:
    """The priced spans' exact sum, flagged when some call had no known price."""
    priced = [Decimal(st.cost_usd) for st in steps if st.cost_status == "priced" and st.cost_usd]
    cost = f"${sum(priced, Decimal(0)):.6f}"
    if any(st.cost_status == "unknown" for st in steps):
        cost += " + calls without a known price"
    return cost


@page("/traces/{trace_id}", title="Trace")
def trace_page(request: Request, principal: Principal, trace_id: str) -> Response:
    """A trace of the tenant's that no run row stands for (an external agent's trace, an
    eval case of an external target): its spans as a waterfall, costs and decisions."""
    from daytwo.server.routes.traces import owned_trace

    store = request.app.state.store
    tid = owned_trace(store, principal.tenant, trace_id[:64])
    explanation = trace_waterfall(store, principal.tenant, tid)
    total = explanation.total_ms or 1.0
    run_id = f"otlp-{tid}"
    has_run = bool(list_runs(store, principal.tenant, run_id=run_id))
    tokens = sum((st.input_tokens or 0) + (st.output_tokens or 0) for st in explanation.steps)
    return render(
        request,
        "trace.html",
        principal,
        title=f"Trace {tid[:16]}",
        active="/explorer",
        trace_id=tid,
        run_id=run_id if has_run else None,
        cost=_ledger_cost(explanation.steps),
        tokens=tokens,
        explanation=explanation,
        decisions=[
            {"kind": d.kind, "summary": d.summary} for st in explanation.steps for d in st.decisions
        ],
        kind_of=_kind_of,
        pct=lambda ms: round(max(0.0, min(100.0, 100.0 * ms / total)), 3),
        empty_waterfall="",
    )


@page("/agents", title="Agents", nav="Agents")
def agents_page(request: Request, principal: Principal) -> Response:
    agents = _tenant_agents(request, principal.tenant)
    return render(
        request,
        "agents.html",
        principal,
        title="Agents",
        agents=agents,
        names=sorted({a.name for a in agents}),
        can_admin=role_at_least(principal.role, "admin"),
    )


@page("/tools", title="Tools", nav="Tools")
def tools_page(request: Request, principal: Principal) -> Response:
    from daytwo.server.routes.tools import get_gateway, tool_alerts, tool_health

    store = request.app.state.store
    gateway = get_gateway(request)
    window_s = 24 * 3600.0
    health = {h.tool: h for h in tool_health(store, gateway, principal.tenant, window_s)}
    latest: dict[str, Any] = {}
    for t in gateway.tools():
        if t.name in health:
            latest[t.name] = t  # the catalog lists versions oldest first: keep the newest
    return render(
        request,
        "tools.html",
        principal,
        title="Tools",
        tools=[latest[n] for n in sorted(latest)],
        health=health,
        alerts=tool_alerts(store, gateway, principal.tenant),
        window_label="24 h",
    )


@page("/costs", title="Costs", nav="Costs")
def costs_page(request: Request, principal: Principal) -> Response:
    from datetime import timedelta

    from daytwo.server.charts import bar_chart
    from daytwo.server.routes.costs import cost_report
    from daytwo.store.base import utcnow

    try:
        days = int(request.query_params.get("days", "30"))
    except ValueError:
        days = 30
    days = min(max(days, 1), 366)
    report = cost_report(request.app.state.store, principal.tenant, utcnow() - timedelta(days=days))
    chart = bar_chart([(g.key, float(g.cost_usd)) for g in report.by_day], unit=" $")
    return render(
        request, "costs.html", principal, title="Costs", report=report, days=days, day_chart=chart
    )


@page("/knowledge", title="Knowledge", nav="Knowledge")
def knowledge_page(request: Request, principal: Principal) -> Response:
    from daytwo.knowledge.maintenance import health as kb_health
    from daytwo.server.routes.knowledge import collections_status, get_kb

    kb = get_kb(request)
    collections = collections_status(kb, request.app.state.store, principal.tenant)
    health: dict[str, dict[str, Any]] = {}
    for c in collections:
        for g in kb_health(kb, c["name"], samples=20)["generations"]:
            health[g["generation"]] = g
    return render(
        request,
        "knowledge.html",
        principal,
        title="Knowledge",
        collections=collections,
        health=health,
    )


_NOT_SCORES = {"cost_usd", "error", "latency_ms"}


def _score_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Quality scores in [0, 1] (usage, latency, cost and error counts are left to the report)."""
    out = {}
    for name, m in (summary.get("metrics") or {}).items():
        if name in _NOT_SCORES or name.endswith("tokens"):
            continue
        mean = m.get("mean") if isinstance(m, dict) else None
        if isinstance(mean, (int, float)) and 0.0 <= mean <= 1.0:
            out[name] = float(mean)
    return out


@page("/evals", title="Evals", nav="Evals")
def evals_page(request: Request, principal: Principal) -> Response:
    from daytwo.evals.datasets import GoldenSets
    from daytwo.server.charts import line_chart
    from daytwo.server.routes.evals import eval_runs_of, visible_sets

    store = request.app.state.store
    gs = GoldenSets(store)
    sets = []
    for name in visible_sets(store, principal.tenant):
        versions = gs.versions(name)
        runs = [r for r in eval_runs_of(store, principal.tenant, name) if r.status == "completed"]
        runs.reverse()  # oldest first for the chart
        scores = [_score_metrics(r.summary) for r in runs]
        metrics = sorted({m for s in scores for m in s})
        series = {m: [s[m] for s in scores if m in s] for m in metrics}
        compare = None
        if len(runs) >= 2:
            base, cand = runs[-2], runs[-1]
            bs, cs = scores[-2], scores[-1]
            compare = {
                "baseline": base.id,
                "candidate": cand.id,
                "baseline_agent": f"{base.agent}@{base.agent_version}",
                "candidate_agent": f"{cand.agent}@{cand.agent_version}",
                "metrics": [
                    {"name": m, "base": bs[m], "cand": cs[m], "delta": cs[m] - bs[m]}
                    for m in metrics
                    if m in bs and m in cs
                ],
            }
        sets.append(
            {
                "name": name,
                "latest_version": versions[-1].version if versions else 0,
                "cases": versions[-1].case_count if versions else 0,
                "runs": runs,
                "chart": line_chart(series),
                "compare": compare,
            }
        )
    return render(request, "evals.html", principal, title="Evals", sets=sets)
