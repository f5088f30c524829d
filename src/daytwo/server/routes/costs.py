"""Costs of the caller's tenant by agent, model, principal and day (from cost spans).

Only spans that carry a cost (model calls, paid tool calls) are summed, like the
tracing layer's ledger. A span's principal and agent are inherited from the nearest
ancestor span that sets them; its tenant is the principal's (see ``tenancy``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from daytwo.server.deps import Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.tenancy import tenant_of
from daytwo.store import Store
from daytwo.store.base import utcnow

__all__ = ["CostReport", "cost_report", "router"]

router = APIRouter(prefix="/api/v1/costs", tags=["costs"], responses=ERROR_RESPONSES)


class CostGroup(BaseModel):
    """Cost of one group: exact USD (decimal text) of priced spans; unpriced ones counted."""

    key: str
    cost_usd: str
    priced_spans: int
    unpriced_spans: int
    input_tokens: int
    output_tokens: int


class CostReport(BaseModel):
    """The tenant's costs over the window."""

    tenant: str
    since: datetime
    total_usd: str
    unpriced_spans: int
    by_agent: list[CostGroup]
    by_model: list[CostGroup]
    by_principal: list[CostGroup]
    by_day: list[CostGroup]


class _Acc:
    def __init__(self) -> None:
        self.cost = Decimal(0)
        self.priced = 0
        self.unpriced = 0
        self.tin = 0
        self.tout = 0

    def add(self, sp: Any) -> None:
        if sp.cost_status == "priced" and sp.cost_usd is not None:
            self.cost += Decimal(sp.cost_usd)
            self.priced += 1
        else:
            self.unpriced += 1
        self.tin += sp.input_tokens or 0
        self.tout += sp.output_tokens or 0


def _groups(accs: dict[str, _Acc], *, by_key: bool = False) -> list[CostGroup]:
    items = sorted(accs.items()) if by_key else sorted(accs.items(), key=lambda kv: -kv[1].cost)
    return [
        CostGroup(
            key=k,
            cost_usd=str(a.cost),
            priced_spans=a.priced,
            unpriced_spans=a.unpriced,
            input_tokens=a.tin,
            output_tokens=a.tout,
        )
        for k, a in items
    ]


def _model_label(attributes: dict[str, Any] | None, model: str | None) -> str:
    """The model as users name it: the profile, else the model without any file path.

    A local llama.cpp server answers with the GGUF file's path as the model name; a
    page must never show paths on the server.
    """
    profile = (attributes or {}).get("daytwo.model.profile")
    if isinstance(profile, str) and profile:
        return profile
    if not model:
        return "(tool)"
    if model.startswith(("/", "~", ".")) or "\\" in model or model.endswith(".gguf"):
        return model.replace("\\", "/").rsplit("/", 1)[-1]
    return model


def cost_report(store: Store, tenant: str, since: datetime) -> CostReport:
    """Sum the tenant's cost spans since ``since``."""
    from daytwo.store.tables.tracing import SpanRow
    from daytwo.tracing.ledger import COUNTED

    with store.session() as s:
        # Only spans the ledger counts: a wrapper around a model call is never priced again.
        spans = list(
            s.scalars(
                sa.select(SpanRow).where(
                    SpanRow.cost_status.in_(COUNTED), SpanRow.start_time >= since
                )
            )
        )
        traces = sorted({sp.trace_id for sp in spans})
        nodes: dict[str, tuple[str | None, str | None, str | None]] = {}
        for i in range(0, len(traces), 500):
            q = sa.select(
                SpanRow.span_id, SpanRow.parent_span_id, SpanRow.principal, SpanRow.agent
            ).where(SpanRow.trace_id.in_(traces[i : i + 500]))
            for sid, parent, principal, agent in s.execute(q):
                nodes[sid] = (parent, principal, agent)

    def inherited(span_id: str, index: int) -> str | None:
        seen: set[str] = set()
        cur: str | None = span_id
        while cur is not None and cur in nodes and cur not in seen:
            seen.add(cur)
            value = nodes[cur][index]
            if value:
                return value
            cur = nodes[cur][0]
        return None

    total = _Acc()
    by: dict[str, dict[str, _Acc]] = {d: defaultdict(_Acc) for d in ("agent", "model", "p", "day")}
    for sp in spans:
        principal = inherited(sp.span_id, 1)
        if tenant_of(principal) != tenant:
            continue
        total.add(sp)
        by["agent"][inherited(sp.span_id, 2) or "(none)"].add(sp)
        by["model"][_model_label(sp.attributes, sp.model)].add(sp)
        by["p"][principal or "(none)"].add(sp)
        by["day"][sp.start_time.date().isoformat()].add(sp)
    return CostReport(
        tenant=tenant,
        since=since,
        total_usd=str(total.cost),
        unpriced_spans=total.unpriced,
        by_agent=_groups(by["agent"]),
        by_model=_groups(by["model"]),
        by_principal=_groups(by["p"]),
        by_day=_groups(by["day"], by_key=True),
    )


@router.get("", response_model=CostReport, summary="Costs by agent, model, principal and day")
def costs(
    principal: Viewer,
    store: Annotated[Store, Depends(get_store)],
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> CostReport:
    return cost_report(store, principal.tenant, utcnow() - timedelta(days=days))
