"""Open alerts of one tenant in one list: tool drift, eval watch, budgets, model canaries.

Each layer raises and stores its own alerts; this module only reads them, keeps the
tenant's, and says where the evidence is:

- tool drift (the gateway's drift alerts of the tenant's tools) → the tools page;
- eval watch (``daytwo eval watch`` alerts on the tenant's runs) → the eval run view;
- budgets (the model gateway's daily budgets of the tenant and its keys, at 80 % or
  more of a limit today) → the budgets in the API;
- canaries (the latest check of a model profile the tenant's routes use failed; the
  host's own tenant ``default`` sees every profile) → the canary check page.

"Open" means raised inside the overview's window (drift and watch alerts have no
closed state) or true now (budgets, the latest canary check).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import Request

from daytwo.server.tenancy import DEFAULT_TENANT
from daytwo.store import Store

__all__ = ["BUDGET_WARN", "Alert", "canary_profiles", "open_alerts", "tool_drift"]

BUDGET_WARN = 0.8
"""A budget alert opens when today's spending reaches this share of a daily limit."""


@dataclass(frozen=True)
class Alert:
    """One open alert and the page that shows its evidence."""

    kind: str
    subject: str
    summary: str
    at: datetime | None
    href: str
    severity: str = "warn"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "summary": self.summary,
            "at": self.at.isoformat() if self.at else None,
            "href": self.href,
            "severity": self.severity,
        }


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def tool_drift(request: Request, tenant: str) -> list[Any]:
    """The drift alerts of the tenant's tools, newest first (the gateway's records)."""
    from daytwo.server.routes.tools import get_gateway, tool_alerts

    return tool_alerts(request.app.state.store, get_gateway(request), tenant, limit=500)


def _tool_alerts(drift: list[Any], since: datetime) -> list[Alert]:
    out = []
    for a in drift:
        at = _parse(a.created_at)
        if at < since:
            continue
        out.append(
            Alert(
                kind="tool drift",
                subject=f"{a.tool} v{a.version}",
                summary=" ".join(p for p in (a.kind, a.field if a.field != a.kind else "") if p)
                + f" ({a.action or 'recorded'})",
                at=at,
                href=f"/tools#drift-{a.id}",
                severity="bad" if a.action == "block" else "warn",
            )
        )
    return out


def _eval_alerts(store: Store, tenant: str, since: datetime) -> list[Alert]:
    from daytwo.server.routes.evals import eval_runs_of
    from daytwo.store.tables.evals import EvalAlert

    runs = {r.id for r in eval_runs_of(store, tenant)}
    if not runs:
        return []
    with store.session() as s:
        rows = list(
            s.scalars(
                sa.select(EvalAlert)
                .where(EvalAlert.run_id.in_(runs), EvalAlert.created_at >= since)
                .order_by(EvalAlert.created_at.desc())
            )
        )
    return [
        Alert(
            kind="eval watch",
            subject=f"{r.agent} on {r.set_name}",
            summary=f"{r.metric} {r.baseline_mean:.3f} → {r.recent_mean:.3f} ({r.delta:+.3f})",
            at=r.created_at,
            href=f"/evals/runs/{r.run_id}?metric={r.metric}",
            severity="bad",
        )
        for r in rows
    ]


def _budget_alerts(request: Request, tenant: str) -> list[Alert]:
    gateway = getattr(request.app.state, "model_gateway", None)
    if gateway is None:
        return []
    out = []
    for b in gateway.limits.all(tenant):
        shares = []
        if b.usd_per_day:
            shares.append(("USD", b.spent_usd / b.usd_per_day, b.spent_usd, b.usd_per_day))
        if b.tokens_per_day:
            tokens = b.spent_tokens / b.tokens_per_day
            shares.append(("tokens", tokens, b.spent_tokens, b.tokens_per_day))
        for unit, share, spent, limit in shares:
            if share >= BUDGET_WARN:
                out.append(
                    Alert(
                        kind="budget",
                        subject=f"{b.scope} {b.subject[:12]}",
                        summary=f"{share:.0%} of the daily {unit} budget spent "
                        f"({spent:g} of {limit:g})",
                        at=None,
                        href="/api/v1/models/budgets",
                        severity="bad" if share >= 1.0 else "warn",
                    )
                )
    return out


def canary_profiles(store: Store, tenant: str) -> set[str] | None:
    """Model profiles whose canaries ``tenant`` may see (None: every profile)."""
    from daytwo.store.tables.server import ModelRoute

    if tenant == DEFAULT_TENANT:
        return None
    with store.session() as s:
        targets = s.scalars(sa.select(ModelRoute.targets).where(ModelRoute.tenant == tenant))
        return {t for row in targets for t in row}


def _canary_alerts(store: Store, tenant: str) -> list[Alert]:
    from daytwo.store.tables.models import CanaryCheck

    allowed = canary_profiles(store, tenant)
    if allowed is not None and not allowed:
        return []
    newest = (
        sa.select(CanaryCheck.profile, sa.func.max(CanaryCheck.created_at).label("at"))
        .group_by(CanaryCheck.profile)
        .subquery()
    )
    q = sa.select(CanaryCheck).join(
        newest,
        sa.and_(CanaryCheck.profile == newest.c.profile, CanaryCheck.created_at == newest.c.at),
    )
    if allowed is not None:
        q = q.where(CanaryCheck.profile.in_(allowed))
    with store.session() as s:
        rows = [r for r in s.scalars(q) if not r.passed]
    return [
        Alert(
            kind="canary",
            subject=r.profile,
            summary=f"exact match {r.exact_match_rate:.0%}, logprob divergence "
            f"{r.logprob_divergence:.3f}",
            at=r.created_at,
            href=f"/models/canary/{r.id}",
            severity="bad",
        )
        for r in rows
    ]


def open_alerts(
    request: Request, tenant: str, since: datetime, drift: list[Any] | None = None
) -> list[Alert]:
    """The tenant's open alerts, newest first (budgets, which are about today, first).

    ``drift``: the tenant's tool drift alerts when the caller has read them already.
    """
    store = request.app.state.store
    if drift is None:
        drift = tool_drift(request, tenant)
    alerts = [
        *_tool_alerts(drift, since),
        *_eval_alerts(store, tenant, since),
        *_canary_alerts(store, tenant),
    ]
    alerts.sort(key=lambda a: a.at.timestamp() if a.at else 0.0, reverse=True)
    return _budget_alerts(request, tenant) + alerts
