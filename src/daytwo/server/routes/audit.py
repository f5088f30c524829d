"""The audit log: verify the whole hash chain (admin) and export the tenant's records."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from daytwo.server.deps import Admin, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.routes.runs import AuditRecordOut
from daytwo.server.tenancy import tenant_clause, tenant_of
from daytwo.store import Store

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)


class ChainStatus(BaseModel):
    """Whether the whole chain, its head and its signed checkpoints verify."""

    ok: bool
    records: int
    checkpoints: int
    last_seq: int
    sealed_seq: int
    problem: str | None
    summary: str


@router.get("/verify", response_model=ChainStatus, summary="Verify the audit chain")
def verify(principal: Admin, request: Request) -> ChainStatus:
    report = request.app.state.audit.verify()
    problem = None
    if report.problem is not None:
        problem = f"record {report.problem.seq}: {report.problem.reason}"
    summary = (
        f"audit chain verified: {report.records} records intact"
        if report.ok
        else f"audit chain BROKEN at {problem}"
    )
    return ChainStatus(
        ok=report.ok,
        records=report.records,
        checkpoints=report.checkpoints,
        last_seq=report.last_seq,
        sealed_seq=report.sealed_seq,
        problem=problem,
        summary=summary,
    )


@router.get("/export", response_model=list[AuditRecordOut], summary="Export the tenant's records")
def export(
    principal: Admin,
    request: Request,
    store: Annotated[Store, Depends(get_store)],
    since_seq: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # a BIGINT, no overflow
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> list[AuditRecordOut]:
    """Records about the tenant's runs or made by the tenant's principals, in chain order."""
    from daytwo.store.tables.runtime import RunRecord

    with store.session() as s:
        runs = set(
            s.scalars(
                sa.select(RunRecord.id).where(tenant_clause(RunRecord.principal, principal.tenant))
            )
        )
    out = []
    for r in request.app.state.audit.records(since_seq=since_seq):
        mine = (r.run_id in runs or r.subject in runs) or (
            "/" in r.actor and tenant_of(r.actor) == principal.tenant
        )
        if mine:
            out.append(
                AuditRecordOut(
                    seq=r.seq,
                    at=r.at.isoformat(),
                    kind=r.kind,
                    actor=r.actor,
                    subject=r.subject,
                    data=r.data,
                    hash=r.hash,
                )
            )
            if len(out) >= limit:
                break
    return out
