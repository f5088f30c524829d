"""Runs: start, list, show, stream events (SSE), explain, audit, resume, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from daytwo.exceptions import ConflictError, MissingDependency, NotFoundError
from daytwo.server.auth import Principal
from daytwo.server.deps import Operator, Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.events import audit_event, principal_data
from daytwo.server.ownership import check_visible
from daytwo.server.tenancy import principal_string, tenant_clause
from daytwo.store import Store

__all__ = [
    "RunOut",
    "get_runtime",
    "owned_run",
    "router",
    "run_waterfall",
    "trace_waterfall",
    "waterfall",
]

router = APIRouter(prefix="/api/v1/runs", tags=["runs"], responses=ERROR_RESPONSES)

FINAL = {"succeeded", "failed", "cancelled"}

RunId = Annotated[str, Path(min_length=1, max_length=64, description="The run id.")]


def get_runtime(request: Request) -> Any:
    """The app's runtime, or MissingDependency when the server runs without one."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise MissingDependency(
            "this server has no agent runtime",
            hint="start it with `daytwo serve` (or pass runtime= to create_app)",
        )
    return runtime


_SUBJECT = r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$"


class OnBehalfOf(BaseModel):
    """An end user of the caller's application."""

    principal: str = Field(pattern=_SUBJECT, description="The user's principal (KB ACL user).")
    groups: list[Annotated[str, Field(pattern=_SUBJECT)]] = Field(
        default_factory=list, max_length=64
    )


class RunStart(BaseModel):
    """Start a run of an agent version (default: the ``prod`` alias, else the latest)."""

    agent: str = Field(min_length=1, max_length=128)
    inputs: dict[str, Any] = Field(default_factory=dict)
    version: Annotated[int, Field(ge=1, le=2**31 - 1)] | str | None = Field(
        default=None, description="Version number or alias."
    )
    on_behalf_of: OnBehalfOf | None = Field(
        default=None,
        description="The end user the run acts for: retrieval uses their principal and "
        "groups (default: the key's principal, no groups).",
    )
    session: str | None = Field(
        default=None,
        pattern=_SUBJECT,
        description="The conversation the run belongs to (the dashboard's explorer strings "
        "a session's runs together).",
    )


class Checkpoint(BaseModel):
    """One durable step checkpoint."""

    n: int
    name: str
    status: str | None = None
    tool: str | None = None
    ms: float = 0
    error: str | None = None


class RunOut(BaseModel):
    """A run as recorded."""

    id: str
    agent: str
    version: int
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    decisions: list[Any]
    error: str | None
    forked_from: str | None
    steps_done: int
    tokens: int
    cost_usd: float
    created_at: str | None
    finished_at: str | None
    session: str | None = None
    user: str | None = None
    checkpoints: list[Checkpoint] | None = None


def _out(run: dict[str, Any]) -> RunOut:
    data = {k: v for k, v in run.items() if k != "principal"}
    return RunOut.model_validate(data)


def owned_run(store: Store, principal: Principal, run_id: str) -> None:
    """Raise NotFoundError unless the run exists and belongs to the principal's tenant."""
    from daytwo.store.tables.runtime import RunRecord

    with store.session() as s:
        found = s.scalar(
            sa.select(RunRecord.id).where(
                RunRecord.id == run_id, tenant_clause(RunRecord.principal, principal.tenant)
            )
        )
    if found is None:
        raise NotFoundError(f"no run {run_id!r}", hint="list your runs with GET /api/v1/runs")


def list_runs(
    store: Store,
    tenant: str,
    *,
    agent: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """The tenant's runs (or the one with ``run_id``), newest first."""
    from daytwo.store.tables.runtime import RunRecord

    q = (
        sa.select(RunRecord)
        .where(tenant_clause(RunRecord.principal, tenant))
        .order_by(RunRecord.created_at.desc(), RunRecord.id)
        .limit(limit)
    )
    if agent:
        q = q.where(RunRecord.agent_name == agent)
    if status:
        q = q.where(RunRecord.status == status)
    if since is not None:
        q = q.where(RunRecord.created_at >= since)
    if run_id is not None:
        q = q.where(RunRecord.id == run_id)
    with store.session() as s:
        return [
            {
                "id": r.id,
                "agent": r.agent_name,
                "version": r.agent_version,
                "status": r.status,
                "inputs": r.inputs,
                "outputs": r.outputs,
                "decisions": r.decisions,
                "error": r.error,
                "forked_from": r.forked_from,
                "steps_done": r.steps_done,
                "tokens": r.tokens,
                "cost_usd": r.cost_usd,
                "created_at": r.created_at.isoformat() if r.created_at else None,
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "session": r.session_id,
                "user": r.user_id,
            }
            for r in s.scalars(q)
        ]


StoreDep = Annotated[Store, Depends(get_store)]


async def _get_runtime(request: Request) -> Any:
    return get_runtime(request)  # async: no thread-pool hand-off for a read of the app's state


RuntimeDep = Annotated[Any, Depends(_get_runtime)]


@router.get("", response_model=list[RunOut], summary="List runs (newest first)")
def runs(
    principal: Viewer,
    store: StoreDep,
    agent: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunOut]:
    return [
        _out(r) for r in list_runs(store, principal.tenant, agent=agent, status=status, limit=limit)
    ]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Starting again with the same key (within the tenant) returns the run "
        "the first request started instead of starting another.",
    ),
]


def _idempotent_run_id(tenant: str, key: str) -> str:
    """The run id a tenant's idempotency key stands for (the same on every API process)."""
    import hashlib

    return hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()[:32]


def _existing_run(store: Store, tenant: str, run_id: str) -> RunOut | None:
    found = list_runs(store, tenant, run_id=run_id, limit=1)
    return _out(found[0]) if found else None


@router.post("", response_model=RunOut, status_code=202, summary="Start a run")
def start_run(
    body: RunStart,
    principal: Operator,
    store: StoreDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> RunOut:
    import uuid

    from daytwo.server.scoping import record_run_subject

    check_visible(store, "agent", body.agent, principal.tenant, "agent")
    if idempotency_key is None:
        run_id = uuid.uuid4().hex
    else:
        run_id = _idempotent_run_id(principal.tenant, idempotency_key)
        existing = _existing_run(store, principal.tenant, run_id)
        if existing is not None:
            return existing
    try:
        if body.on_behalf_of is not None:  # recorded before the run can retrieve anything
            record_run_subject(store, run_id, body.on_behalf_of.principal, body.on_behalf_of.groups)
        run = runtime.start(
            body.agent,
            body.inputs,
            version=body.version,
            principal=principal_string(principal),
            run_id=run_id,
            wait=False,
            session_id=body.session,
            user_id=body.on_behalf_of.principal if body.on_behalf_of is not None else None,
        )
    except (ConflictError, sa.exc.IntegrityError):
        # A concurrent request with the same key recorded the run first: answer with it.
        existing = _existing_run(store, principal.tenant, run_id) if idempotency_key else None
        if existing is None:
            raise
        return existing
    return _out(run)


@router.get("/{run_id}", response_model=RunOut, summary="Show a run with its checkpoints")
def show_run(run_id: RunId, principal: Viewer, store: StoreDep, runtime: RuntimeDep) -> RunOut:
    owned_run(store, principal, run_id)
    return _out(runtime.show(run_id))


@router.post("/{run_id}/cancel", response_model=RunOut, summary="Cancel a run")
def cancel_run(run_id: RunId, principal: Operator, store: StoreDep, runtime: RuntimeDep) -> RunOut:
    owned_run(store, principal, run_id)
    runtime.cancel(run_id, by=principal_string(principal), data=principal_data(principal))
    return _out(runtime.show(run_id, steps=False))


@router.post("/{run_id}/resume", response_model=RunOut, summary="Resume a run from its last step")
def resume_run(
    run_id: RunId, principal: Operator, store: StoreDep, runtime: RuntimeDep, request: Request
) -> RunOut:
    owned_run(store, principal, run_id)
    run = runtime.resume(run_id, wait=False)
    audit_event(request, principal, "run.resume", run_id, {"run_id": run_id})
    return _out(run)


class ExplainedDecisionOut(BaseModel):
    kind: str
    summary: str
    data: Any = None


class WaterfallStep(BaseModel):
    """One span of the run on the time axis, in plain language."""

    index: int
    depth: int
    name: str
    operation: str | None
    offset_ms: float
    duration_ms: float
    status: str
    text: str
    cost_usd: str | None = None
    cost_status: str | None = Field(
        default=None,
        description="priced, unknown (no price for the model), or wrapper (counted inside)",
    )
    input_tokens: int | None = None
    output_tokens: int | None = None
    decisions: list[ExplainedDecisionOut] = Field(default_factory=list)


class Explanation(BaseModel):
    """The run's spans as a waterfall, with decision records in plain language."""

    run_id: str
    total_ms: float
    steps: list[WaterfallStep]


def run_waterfall(store: Store, run_id: str) -> Explanation:
    """The run's spans from the tracing layer, offsets from the first span's start."""
    from daytwo.tracing.explain import explain_run

    _flush_spans()
    try:
        steps = explain_run(store, run_id)
    except NotFoundError:
        steps = []
    return waterfall(run_id, steps)


def _flush_spans() -> None:
    from daytwo.tracing import current_handle

    handle = current_handle()
    if handle is not None:
        handle.flush(timeout_s=5.0)  # spans of a run that just ended may still be buffered


def trace_waterfall(store: Store, tenant: str, trace_id: str) -> Explanation:
    """The spans of ``tenant`` in trace ``trace_id`` (an external agent's trace with no
    run row); NotFoundError when the tenant has none there."""
    from daytwo.store.tables.tracing import SpanRow
    from daytwo.tracing.explain import explain_trace

    _flush_spans()
    visible = sa.or_(SpanRow.tenant == tenant, tenant_clause(SpanRow.principal, tenant))
    return waterfall(trace_id, explain_trace(store, trace_id, visible=visible))


def waterfall(label: str, steps: list[Any]) -> Explanation:
    """Explained steps as a waterfall: offsets from the first span's start."""
    if not steps:
        return Explanation(run_id=label, total_ms=0.0, steps=[])
    t0 = min(s.started_at for s in steps)
    out = []
    end = 0.0
    for st in steps:
        offset = (st.started_at - t0).total_seconds() * 1000
        end = max(end, offset + st.duration_ms)
        out.append(
            WaterfallStep(
                index=st.index,
                depth=st.depth,
                name=st.name,
                operation=st.operation,
                offset_ms=round(offset, 3),
                duration_ms=round(st.duration_ms, 3),
                status=st.status,
                text=st.text,
                cost_usd=st.cost_usd,
                cost_status=st.cost_status,
                input_tokens=st.input_tokens,
                output_tokens=st.output_tokens,
                decisions=[
                    ExplainedDecisionOut(kind=d.kind, summary=d.summary, data=d.data)
                    for d in st.decisions
                ],
            )
        )
    return Explanation(run_id=label, total_ms=round(end, 3), steps=out)


@router.get("/{run_id}/explain", response_model=Explanation, summary="Explain a run")
def explain(run_id: RunId, principal: Viewer, store: StoreDep) -> Explanation:
    owned_run(store, principal, run_id)
    return run_waterfall(store, run_id)


class AuditRecordOut(BaseModel):
    seq: int
    at: str
    kind: str
    actor: str
    subject: str | None
    data: dict[str, Any]
    hash: str


class RunAudit(BaseModel):
    """The run's audit records and whether the whole hash chain verifies."""

    ok: bool
    summary: str
    chain_records: int
    problem: str | None
    records: list[AuditRecordOut]


def run_audit(request: Request, run_id: str) -> RunAudit:
    """Verify the chain and list the run's records."""
    from daytwo.tracing.audit import AuditLog

    audit: AuditLog = request.app.state.audit
    report = audit.verify()
    records = [
        r
        for r in audit.records()
        if run_id in (r.run_id, r.subject) or run_id in (r.data.get("runs") or ())
    ]
    problem = None
    if report.problem is not None:
        problem = f"record {report.problem.seq}: {report.problem.reason}"
    summary = (
        f"audit chain verified: {report.records} records intact, {len(records)} for this run"
        if report.ok
        else f"audit chain BROKEN at {problem}"
    )
    return RunAudit(
        ok=report.ok,
        summary=summary,
        chain_records=report.records,
        problem=problem,
        records=[
            AuditRecordOut(
                seq=r.seq,
                at=r.at.isoformat(),
                kind=r.kind,
                actor=r.actor,
                subject=r.subject,
                data=r.data,
                hash=r.hash,
            )
            for r in records
        ],
    )


@router.post("/{run_id}/audit/verify", response_model=RunAudit, summary="Verify a run's audit")
def verify_audit(run_id: RunId, principal: Viewer, request: Request, store: StoreDep) -> RunAudit:
    owned_run(store, principal, run_id)
    return run_audit(request, run_id)


async def _events(runtime: Any, run_id: str, poll_s: float, max_s: float) -> AsyncIterator[str]:
    seen = 0
    status = None
    waited = 0.0
    while True:
        run = await run_in_threadpool(runtime.show, run_id)
        checkpoints = run.get("checkpoints") or []
        for cp in checkpoints[seen:]:
            yield f"event: step\ndata: {json.dumps(cp, default=str)}\n\n"
        seen = max(seen, len(checkpoints))
        if run["status"] != status:
            status = run["status"]
            yield f"event: status\ndata: {json.dumps({'status': status})}\n\n"
        if status in FINAL or status == "waiting":
            payload = {"status": status, "error": run.get("error")}
            yield f"event: done\ndata: {json.dumps(payload)}\n\n"
            return
        if waited >= max_s:
            yield "event: timeout\ndata: {}\n\n"
            return
        await asyncio.sleep(poll_s)
        waited += poll_s


@router.get(
    "/{run_id}/events",
    summary="Stream a run's steps and status (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
def run_events(
    run_id: RunId, principal: Viewer, store: StoreDep, runtime: RuntimeDep
) -> StreamingResponse:
    owned_run(store, principal, run_id)
    return StreamingResponse(
        _events(runtime, run_id, poll_s=0.2, max_s=600.0),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
