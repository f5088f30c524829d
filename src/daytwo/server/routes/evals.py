"""Evals: golden sets and their versions, eval runs with scores, gates, HTML reports.

A golden set belongs to a tenant through the server's ownership table (sets made by
the CLI belong to ``default``); an eval run belongs to the tenant of its set.
Running evals stays with the CLI and CI (``daytwo eval run``): it needs the agent's
code and models on the machine that runs it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from daytwo.exceptions import NotFoundError
from daytwo.server.auth import Principal
from daytwo.server.deps import Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.ownership import check_visible, visible
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


class EvalRunOut(BaseModel):
    """An eval run and its summary (metric means per component and tag)."""

    id: str
    kind: str
    agent: str
    agent_version: str
    set_name: str
    set_version: int
    repeats: int
    status: str
    summary: dict[str, Any]
    started_at: str
    finished_at: str | None


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


def eval_runs_of(store: Store, tenant: str, set_name: str | None = None) -> list[Any]:
    """The tenant's eval runs (newest first)."""
    from daytwo.evals.runs import EvalRuns

    names = set(visible_sets(store, tenant))
    return [r for r in EvalRuns(store).list_runs(set_name=set_name) if r.set_name in names]


def _run(store: Store, principal: Principal, run_id: str) -> Any:
    from daytwo.evals.runs import EvalRuns

    run = EvalRuns(store).get(run_id)
    check_visible(store, KIND, run.set_name, principal.tenant, "eval run set")
    return run


def _run_out(run: Any) -> EvalRunOut:
    data = run.as_dict()
    data.pop("config", None)
    return EvalRunOut(**data)


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


@router.get("/runs", response_model=list[EvalRunOut], summary="Eval runs (newest first)")
def runs(
    principal: Viewer,
    store: StoreDep,
    set_name: Annotated[str | None, Query(alias="set", max_length=200)] = None,
) -> list[EvalRunOut]:
    return [_run_out(r) for r in eval_runs_of(store, principal.tenant, set_name)]


@router.get("/runs/{run_id}", response_model=EvalRunOut, summary="One eval run")
def run(run_id: RunId, principal: Viewer, store: StoreDep) -> EvalRunOut:
    try:
        return _run_out(_run(store, principal, run_id))
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
    return HTMLResponse(render_html(EvalRuns(store), r.id))


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
