"""Traces: scores (user feedback and labels) of a trace the caller's tenant owns."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from daytwo.exceptions import NotFoundError
from daytwo.server.deps import Operator, Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.tenancy import principal_string, tenant_clause
from daytwo.store import Store

__all__ = ["owned_trace", "router"]

router = APIRouter(prefix="/api/v1/traces", tags=["traces"], responses=ERROR_RESPONSES)

TraceId = Annotated[
    str, Path(min_length=32, max_length=32, pattern="^[0-9a-fA-F]{32}$", description="Trace id.")
]
StoreDep = Annotated[Store, Depends(get_store)]


def owned_trace(store: Store, tenant: str, trace_id: str) -> str:
    """The trace id (lowercase) when the tenant has spans in it; NotFoundError otherwise."""
    from daytwo.store.tables.tracing import SpanRow
    from daytwo.tracing.scores import check_trace_id

    tid = check_trace_id(trace_id)
    with store.session() as s:
        found = s.scalar(
            sa.select(SpanRow.span_id)
            .where(
                SpanRow.trace_id == tid,
                sa.or_(SpanRow.tenant == tenant, tenant_clause(SpanRow.principal, tenant)),
            )
            .limit(1)
        )
    if found is None:
        raise NotFoundError(
            f"no trace {tid!r}",
            hint="score a trace after its spans were exported (daytwo.sdk.flush())",
        )
    return tid


class ScoreIn(BaseModel):
    """A score: a number, a boolean (stored as 1/0) or a category label."""

    name: str = Field(min_length=1, max_length=64, examples=["user_feedback"])
    value: float | bool | str = Field(examples=[1])
    comment: str | None = Field(default=None, max_length=4000)


class ScoreOut(BaseModel):
    """A stored score."""

    id: str
    trace_id: str
    name: str
    value: float | str
    comment: str | None
    principal: str
    created_at: str


@router.post(
    "/{trace_id}/scores", response_model=ScoreOut, status_code=201, summary="Score a trace"
)
def add_score(trace_id: TraceId, body: ScoreIn, principal: Operator, store: StoreDep) -> ScoreOut:
    from daytwo.tracing.scores import record_score

    tid = owned_trace(store, principal.tenant, trace_id)
    score = record_score(
        store,
        tid,
        body.name,
        body.value,
        comment=body.comment,
        principal=principal_string(principal),
        tenant=principal.tenant,
    )
    return ScoreOut.model_validate(score.to_dict())


@router.get("/{trace_id}/scores", response_model=list[ScoreOut], summary="A trace's scores")
def list_scores(trace_id: TraceId, principal: Viewer, store: StoreDep) -> list[ScoreOut]:
    from daytwo.tracing.scores import scores_of

    tid = owned_trace(store, principal.tenant, trace_id)
    return [ScoreOut.model_validate(s.to_dict()) for s in scores_of(store, tid, principal.tenant)]
