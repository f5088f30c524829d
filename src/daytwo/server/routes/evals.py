"""Evals: golden sets and their versions, eval runs with scores, gates, HTML reports.

A golden set belongs to a tenant through the server's ownership table (sets made by
the CLI belong to ``default``); an eval run belongs to the tenant of its set.
An operator starts a run of a registered agent version on one of the tenant's sets
(``POST /runs``): it executes in the background through the server's agent runtime,
each case as a durable run of that operator; ``GET /runs/{id}`` shows its status and,
once completed, its scores.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from daytwo.evals.runs import RunInfo
from daytwo.exceptions import InputError, NotFoundError
from daytwo.server.auth import Principal
from daytwo.server.deps import Operator, Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.ownership import check_visible, visible
from daytwo.server.routes.runs import get_runtime
from daytwo.server.tenancy import principal_string, tenant_of
from daytwo.store import Store

__all__ = ["eval_runs_of", "router", "visible_sets"]

router = APIRouter(prefix="/api/v1/evals", tags=["evals"], responses=ERROR_RESPONSES)
KIND = "eval_set"

RunId = Annotated[str, Path(min_length=4, max_length=64, description="Eval run id.")]
StoreDep = Annotated[Store, Depends(get_store)]


class SetVersionOut(BaseModel):
    set: str
    version: int
    cases: int
    content_hash: str
    note: str
    created_at: str


class EvalSetOut(BaseModel):
    """A golden set and its versions (newest last)."""

    name: str
    versions: list[SetVersionOut]


class EvalRunStart(BaseModel):
    """Run a golden set version through a registered agent version."""

    agent: str = Field(min_length=1, max_length=200, description="AGENT or AGENT@VERSION.")
    set: str = Field(min_length=1, max_length=200, description="SET or SET@VERSION.")
    repeats: int = Field(default=1, ge=1, le=20)
    concurrency: int = Field(default=2, ge=1, le=16)
    k: int = Field(default=5, ge=1, le=100, description="Cut-off of retrieval metrics.")


class GateIn(BaseModel):
    candidate: str = Field(min_length=4, max_length=64)
    baseline: str = Field(min_length=4, max_length=64)
    metric: str = Field(min_length=1, max_length=100)
    max_drop: float = Field(default=0.0, ge=0.0, le=1.0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)


class GateOut(BaseModel):
    """Outcome of a gate: the paired bootstrap CI of candidate minus baseline."""

    passed: bool
    result: dict[str, Any]


def visible_sets(store: Store, tenant: str) -> list[str]:
    """Names of the tenant's golden sets."""
    from daytwo.evals.datasets import GoldenSets

    return visible(store, KIND, GoldenSets(store).names(), tenant)


def eval_runs_of(store: Store, tenant: str, set_name: str | None = None) -> list[RunInfo]:
    """The tenant's eval runs (newest first)."""
    from daytwo.evals.runs import EvalRuns

    names = set(visible_sets(store, tenant))
    return [
        r
        for r in EvalRuns(store).list_runs(set_name=set_name)
        if r.set_name in names and tenant_of(r.config.get("started_by")) == tenant
    ]


def _run(store: Store, principal: Principal, run_id: str) -> RunInfo:
    from daytwo.evals.runs import EvalRuns

    missing = NotFoundError(f"no eval run {run_id!r}", hint="list your eval runs first")
    try:
        run = EvalRuns(store).get(run_id)
    except NotFoundError:
        raise missing from None
    if tenant_of(run.config.get("started_by")) != principal.tenant:
        raise missing  # another tenant's run (even on a set shared with this one)
    return run


@router.get("/sets", response_model=list[EvalSetOut], summary="Golden sets and versions")
def sets(principal: Viewer, store: StoreDep) -> list[EvalSetOut]:
    from daytwo.evals.datasets import GoldenSets

    gs = GoldenSets(store)
    out = []
    for name in visible_sets(store, principal.tenant):
        versions = [v.as_dict() for v in gs.versions(name)]
        out.append(
            EvalSetOut(
                name=name,
                versions=[
                    SetVersionOut(**{k: v[k] for k in SetVersionOut.model_fields}) for v in versions
                ],
            )
        )
    return out


@router.get("/runs", response_model=list[RunInfo], summary="Eval runs (newest first)")
def runs(
    principal: Viewer,
    store: StoreDep,
    set_name: Annotated[str | None, Query(alias="set", max_length=200)] = None,
) -> list[RunInfo]:
    return eval_runs_of(store, principal.tenant, set_name)


@router.post("/runs", response_model=RunInfo, status_code=202, summary="Start an eval run")
def start_run(
    body: EvalRunStart, principal: Operator, store: StoreDep, request: Request
) -> RunInfo:
    """Start the run in the background; poll ``GET /runs/{id}`` until it is ``completed``."""
    from daytwo.evals.bindings import parse_agent_ref
    from daytwo.evals.runs import EvalRuns
    from daytwo.evals.scoring import Scorer
    from daytwo.runtime.eval_runner import RuntimeRunner

    name, version = parse_agent_ref(body.agent)
    if name.startswith(("python:", "model:")):
        raise InputError(
            f"agent {body.agent!r} is not a registered agent",
            hint="the server runs registered agents only: AGENT or AGENT@VERSION",
        )
    runs = EvalRuns(store)
    info = runs.sets.resolve(body.set)
    check_visible(store, KIND, info.set_name, principal.tenant, "eval set")
    who = principal_string(principal)
    runner = RuntimeRunner(get_runtime(request), name, version, principal=who)
    started = runs.start(
        runner,
        f"{info.set_name}@{info.version}",
        repeats=body.repeats,
        concurrency=body.concurrency,
        config={"agent_ref": body.agent, "k": body.k, "started_by": who, "via": "api"},
    )
    runs.execute_in_background(
        started.id, runner, concurrency=body.concurrency, scorer=Scorer(k=body.k)
    )
    return started


@router.get("/runs/{run_id}", response_model=RunInfo, summary="One eval run")
def run(run_id: RunId, principal: Viewer, store: StoreDep) -> RunInfo:
    try:
        return _run(store, principal, run_id)
    except NotFoundError as exc:
        raise NotFoundError(
            f"no eval run {run_id!r}", hint="list them: GET /api/v1/evals/runs"
        ) from exc


@router.get(
    "/runs/{run_id}/report",
    response_model=None,
    summary="HTML report of a run against its baseline",
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
def report(run_id: RunId, principal: Viewer, store: StoreDep) -> HTMLResponse:
    from daytwo.evals.report import render_html
    from daytwo.evals.runs import EvalRuns

    r = _run(store, principal, run_id)
    from daytwo.server.websec import csp_with_style_hashes

    html = render_html(EvalRuns(store), r.id)
    # A self-contained report: its own <style> block is allowed by hash, nothing else.
    return HTMLResponse(html, headers={"Content-Security-Policy": csp_with_style_hashes(html)})


@router.post("/gate", response_model=GateOut, summary="Gate a candidate run against a baseline")
def gate(body: GateIn, principal: Viewer, store: StoreDep) -> GateOut:
    from daytwo.evals.gates import gate as run_gate

    cand = _run(store, principal, body.candidate)
    base = _run(store, principal, body.baseline)
    result = run_gate(
        store,
        candidate=cand.id,
        baseline=base.id,
        metric=body.metric,
        max_drop=body.max_drop,
        confidence=body.confidence,
        resamples=2000,
    )
    data = result.as_dict()
    return GateOut(passed=result.passed, result=data)
