"""The overview page: the tenant's health over a window (24 h, 7 days, 30 days).

Runs per agent@version (server/health.py), tool health (the gateway's call log),
knowledge health (what ``knowledge.maintenance.health`` reports), the latest eval score
per golden set with the release gate's verdict against the run before it
(``evals.gates.gate``), and the open alerts (server/alerts.py). Also the evidence page
of a model canary check, which an alert links to.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from daytwo.exceptions import DaytwoError, NotFoundError
from daytwo.server.alerts import canary_profiles, open_alerts, tool_drift
from daytwo.server.auth import Principal
from daytwo.server.charts import sparkline
from daytwo.server.dashboard import page, render
from daytwo.server.health import WINDOWS, AgentHealth, run_health, window_of

__all__: list[str] = []

MAIN_METRICS = (
    "fuzzy_match",
    "exact_match",
    "fact_recall",
    "tool_call_accuracy",
    "faithfulness",
    "answer_relevancy",
    "semantic_similarity",
)
"""The score an eval set is summed up by on the overview: the first its runs have."""

KB_PROBE_QUERIES = 10
"""Recall-probe queries per live generation on the overview (the knowledge page runs 20)."""


def _sparks(h: AgentHealth, unit: str) -> dict[str, str]:
    return {
        "runs": sparkline(h.series_runs, label=f"{h.label} runs per {unit}"),
        "errors": sparkline(h.series_error_rate, label=f"{h.label} error rate", color=4),
        "cost": sparkline(h.series_cost, label=f"{h.label} cost per {unit}", unit=" $", color=2),
    }


def _tool_health(
    request: Request, tenant: str, window_s: float, since: Any, drift: list[Any]
) -> list[dict[str, Any]]:
    from daytwo.server.routes.tools import get_gateway, tool_health

    store = request.app.state.store
    gateway = get_gateway(request)
    counts: dict[str, int] = {}
    for a in drift:
        if a.created_at >= since.isoformat():
            counts[a.tool] = counts.get(a.tool, 0) + 1
    return [
        {**h.model_dump(), "drift_alerts": counts.get(h.tool, 0)}
        for h in tool_health(store, gateway, tenant, window_s)
    ]


def _knowledge_health(request: Request, tenant: str) -> list[dict[str, Any]]:
    from daytwo.knowledge.maintenance import health as kb_health
    from daytwo.server.routes.knowledge import collections_status, get_kb

    kb = get_kb(request)
    out = []
    for c in collections_status(kb, request.app.state.store, tenant):
        for g in kb_health(kb, c["name"], samples=KB_PROBE_QUERIES)["generations"]:
            out.append({**g, "active": g["generation"] == c.get("active_generation")})
    return out


def _eval_health(request: Request, tenant: str) -> list[dict[str, Any]]:
    from daytwo.evals.gates import gate
    from daytwo.server.routes.evals import eval_runs_of, visible_sets

    store = request.app.state.store
    out = []
    for name in visible_sets(store, tenant):
        runs = [r for r in eval_runs_of(store, tenant, name) if r.status == "completed"]
        if not runs:
            out.append({"set": name, "run": None})
            continue
        latest = runs[0]
        metrics = latest.summary.get("metrics") or {}
        scored = [m for m in MAIN_METRICS if (metrics.get(m) or {}).get("mean") is not None]
        metric = scored[0] if scored else None
        row: dict[str, Any] = {
            "set": name,
            "run": latest,
            "metric": metric,
            "score": metrics[metric]["mean"] if metric else None,
            "verdict": None,
        }
        if metric and len(runs) >= 2:
            try:
                g = gate(
                    store,
                    candidate=latest.id,
                    baseline=runs[1].id,
                    metric=metric,
                    resamples=2000,
                )
            except DaytwoError as exc:
                row["verdict"] = f"no gate: {exc.message}"
            else:
                row["verdict"] = "pass" if g.passed else "fail"
                row["delta"] = g.stats.mean_delta
                row["ci"] = (g.stats.ci_low, g.stats.ci_high)
                row["baseline"] = runs[1].id
        out.append(row)
    return out


def _section(fn: Any, *args: Any) -> tuple[Any, str | None]:
    """A section's data, or the message of the daytwo error that kept it from loading."""
    try:
        return fn(*args), None
    except DaytwoError as exc:
        return [], exc.message


@page("/", title="Overview")
def overview(request: Request, principal: Principal) -> Response:
    window = window_of(request.query_params.get("window"))
    store = request.app.state.store
    tenant = principal.tenant
    health = run_health(store, tenant, window)
    unit = "hour" if window.hourly else "day"
    agents = [(h, _sparks(h, unit)) for h in [health.total, *health.agents]]
    drift, drift_error = _section(tool_drift, request, tenant)
    tools, tools_error = _section(
        _tool_health, request, tenant, window.length.total_seconds(), health.since, drift
    )
    knowledge, knowledge_error = _section(_knowledge_health, request, tenant)
    evals, evals_error = _section(_eval_health, request, tenant)
    alerts, alerts_error = _section(open_alerts, request, tenant, health.since, drift)
    return render(
        request,
        "overview.html",
        principal,
        title="Overview",
        window=window,
        windows=WINDOWS,
        health=health,
        agents=agents,
        unit=unit,
        tools=tools,
        tools_error=tools_error or drift_error,
        knowledge=knowledge,
        knowledge_error=knowledge_error,
        evals=evals,
        evals_error=evals_error,
        alerts=alerts,
        alerts_error=alerts_error,
    )


@page("/models/canary/{check_id}", title="Canary check")
def canary_page(request: Request, principal: Principal, check_id: str) -> Response:
    from daytwo.store.tables.models import CanaryCheck

    store = request.app.state.store
    with store.session() as s:
        row = s.get(CanaryCheck, check_id[:64])
        allowed = canary_profiles(store, principal.tenant)
        if row is None or (allowed is not None and row.profile not in allowed):
            raise NotFoundError(
                f"no canary check {check_id[:64]!r}",
                hint="open the alerts on the overview page",
            )
        details = row.details or {}
        check = {
            "id": row.id,
            "profile": row.profile,
            "passed": row.passed,
            "exact_match_rate": row.exact_match_rate,
            "logprob_divergence": row.logprob_divergence,
            "created_at": row.created_at,
            "prompts": details.get("prompts") or [],
            "changes": details.get("fingerprint_changes") or details.get("changes") or {},
        }
    return render(request, "canary.html", principal, title="Canary check", active="/", check=check)
