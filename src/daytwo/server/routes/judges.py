"""Judges over the API: prompt versions, their verdicts, the human review queue, agreement.

A tenant sees the judge prompt versions that judged its eval runs (plus the built-in
ones), and only the verdicts on its own runs. Reviewers (operators) take the next
verdict of a judge from the queue and label it; each label is audited. Agreement
(Cohen's κ between reviewers and between judge and humans) is per prompt version.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from daytwo.evals.annotations import JudgeInfo
from daytwo.exceptions import InputError, NotFoundError
from daytwo.server.deps import Operator, Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.events import audit_event
from daytwo.server.routes.evals import eval_runs_of
from daytwo.server.tenancy import principal_string
from daytwo.store import Store
from daytwo.store.tables.evals import EvalJudge

__all__ = ["judge_scope", "router", "tenant_judge", "tenant_judges"]

router = APIRouter(prefix="/api/v1/evals/judges", tags=["judges"], responses=ERROR_RESPONSES)
StoreDep = Annotated[Store, Depends(get_store)]
Name = Annotated[str, Path(min_length=1, max_length=100, description="Judge name.")]
Version = Annotated[str, Path(min_length=1, max_length=32, description="Prompt version.")]


class JudgeOut(BaseModel):
    """A judge prompt version (``builtin``: shipped with daytwo, maybe not used yet)."""

    ref: str
    name: str
    version: str
    kind: str
    model: str
    prompt_hash: str
    verdicts: int
    annotated: int
    builtin: bool
    created_at: str | None


class VerdictOut(BaseModel):
    id: str
    run: str | None
    baseline_run: str | None
    case: str
    kind: str
    verdict: str
    score: float | None
    consistent: bool | None
    parse_status: str
    human_labels: list[str]
    created_at: str


class ItemOut(BaseModel):
    """The next verdict to label (None: nothing left for this reviewer)."""

    item: dict[str, Any] | None


class AnnotationIn(BaseModel):
    """A label: 1..5 (pointwise) or candidate/baseline/tie (pairwise)."""

    judgement_id: str = Field(min_length=4, max_length=32)
    label: str = Field(min_length=1, max_length=32)
    shown_first: Literal["candidate", "baseline"] | None = Field(
        default=None, description="Pairwise: which answer the reviewer saw as A."
    )
    note: str = Field(default="", max_length=2000)


class JudgeRunIn(BaseModel):
    """Judge one of your eval runs (pointwise) or a candidate against a baseline (pairwise).

    Only built-in judges run from the API (no judge file is read), on a model your
    tenant may use on the model gateway (a chat profile or one of your routes).
    """

    run: str = Field(min_length=4, max_length=64, description="Eval run (the candidate).")
    baseline: str | None = Field(
        default=None, min_length=4, max_length=64, description="Baseline eval run (pairwise)."
    )
    model: str = Field(min_length=1, max_length=200, description="Model name or your route.")


MAX_JUDGED_CASES = 200
"""A judgement run over the API answers in the request: it judges at most this many cases."""


def judge_scope(store: Store, tenant: str) -> list[str]:
    """The tenant's eval run ids: the only verdicts it may see or label."""
    return [r.id for r in eval_runs_of(store, tenant)]


def _builtin(name: str, version: str) -> Any:
    from daytwo.evals.judging import BUILTIN_JUDGES

    spec = BUILTIN_JUDGES.get(name)
    return spec if spec is not None and spec.version == version else None


def tenant_judges(store: Store, tenant: str) -> list[JudgeOut]:
    """Judges that judged the tenant's runs, then the built-in ones not used yet."""
    from daytwo.evals.annotations import judges
    from daytwo.evals.judging import BUILTIN_JUDGES

    used: list[JudgeInfo] = judges(store, judge_scope(store, tenant))
    out = [
        JudgeOut(
            **{k: v for k, v in j.as_dict().items()},
            builtin=_builtin(j.name, j.version) is not None,
        )
        for j in used
    ]
    seen = {(j.name, j.version) for j in used}
    for spec in BUILTIN_JUDGES.values():
        if (spec.name, spec.version) not in seen:
            out.append(
                JudgeOut(
                    ref=f"{spec.name}@{spec.version}",
                    name=spec.name,
                    version=spec.version,
                    kind=spec.kind,
                    model="",
                    prompt_hash=spec.prompt_hash,
                    verdicts=0,
                    annotated=0,
                    builtin=True,
                    created_at=None,
                )
            )
    return out


def tenant_judge(store: Store, tenant: str, name: str, version: str) -> tuple[EvalJudge, list[str]]:
    """The judge and the tenant's scope; 404 unless it judged the tenant's runs or is built in."""
    from daytwo.evals.annotations import find_judge, judges

    missing = NotFoundError(
        f"no judge {name}@{version}", hint="list the judges: GET /api/v1/evals/judges"
    )
    try:
        judge = find_judge(store, f"{name}@{version}")
    except NotFoundError:
        raise missing from None
    scope = judge_scope(store, tenant)
    spec = _builtin(name, version)
    used = any(j.name == name and j.version == version for j in judges(store, scope))
    if not used and (spec is None or spec.prompt_hash != judge.prompt_hash):
        raise missing
    return judge, scope


@router.get("", response_model=list[JudgeOut], summary="Judge prompt versions")
def list_judges(principal: Viewer, store: StoreDep) -> list[JudgeOut]:
    """Every judge prompt version that judged your runs, and the built-in judges."""
    return tenant_judges(store, principal.tenant)


@router.get(
    "/{name}/{version}/verdicts", response_model=list[VerdictOut], summary="A judge's verdicts"
)
def list_verdicts(
    name: Name,
    version: Version,
    principal: Viewer,
    store: StoreDep,
    run: Annotated[str | None, Query(min_length=4, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> Any:
    """Verdicts on your eval runs (newest first), with the human labels each got."""
    from daytwo.evals.annotations import verdicts

    judge, scope = tenant_judge(store, principal.tenant, name, version)
    return verdicts(store, judge, scope, run_id=run, limit=limit)


@router.get("/{name}/{version}/next", response_model=ItemOut, summary="Next verdict to label")
def next_verdict(name: Name, version: Version, principal: Operator, store: StoreDep) -> ItemOut:
    """The verdict this reviewer should label next (a pair in the order to show it)."""
    from daytwo.evals.annotations import next_item

    judge, scope = tenant_judge(store, principal.tenant, name, version)
    item = next_item(store, judge, principal_string(principal), scope)
    return ItemOut(item=item.as_dict() if item is not None else None)


@router.post(
    "/{name}/{version}/annotations",
    status_code=201,
    response_model=dict[str, Any],
    summary="Label a verdict",
)
def add_annotation(
    name: Name,
    version: Version,
    body: AnnotationIn,
    principal: Operator,
    store: StoreDep,
    request: Request,
) -> dict[str, Any]:
    """Store the caller's label of one verdict of this judge (once per reviewer)."""
    from daytwo.evals.annotations import annotate

    judge, scope = tenant_judge(store, principal.tenant, name, version)
    scoped = _of_judge(store, judge, body.judgement_id, scope)
    out = annotate(
        store,
        body.judgement_id,
        principal_string(principal),
        body.label,
        scoped,
        shown_first=body.shown_first,
        note=body.note,
    )
    audit_event(
        request,
        principal,
        "eval.annotation",
        body.judgement_id,
        {"judge": f"{name}@{version}", "label": body.label, "shown_first": body.shown_first},
    )
    return out


def _of_judge(store: Store, judge: EvalJudge, judgement_id: str, scope: list[str]) -> list[str]:
    """The scope, emptied when the verdict is another judge's (so it is not found)."""
    from daytwo.store.tables.evals import EvalJudgement

    with store.session() as s:
        row = s.get(EvalJudgement, judgement_id)
        return scope if row is not None and row.judge_id == judge.id else []


@router.get(
    "/{name}/{version}/agreement",
    response_model=dict[str, Any],
    summary="Agreement: reviewers and judge vs humans (Cohen's kappa)",
)
def judge_agreement(name: Name, version: Version, principal: Viewer, store: StoreDep) -> Any:
    """Cohen's κ between reviewers and between the judge and the humans, on your runs."""
    from daytwo.evals.annotations import agreement

    judge, scope = tenant_judge(store, principal.tenant, name, version)
    return agreement(store, judge, scope)


@router.post(
    "/{name}/{version}/runs",
    status_code=201,
    response_model=dict[str, Any],
    summary="Run a built-in judge over your eval runs",
)
def run_judge(
    name: Name,
    version: Version,
    body: JudgeRunIn,
    principal: Operator,
    store: StoreDep,
    request: Request,
) -> dict[str, Any]:
    """Every verdict is stored (both orders for a pair); the summary is returned.

    The model is called through the model gateway as the caller (budgets, rate limits,
    the ledger and the trace apply); nothing else runs on the server.
    """
    from daytwo.evals.judging import judge_pairwise, judge_pointwise
    from daytwo.evals.runs import EvalRuns
    from daytwo.server.judge_model import GatewayJudgeModel
    from daytwo.server.routes.evals import _run

    spec = _builtin(name, version)
    if spec is None:
        raise NotFoundError(
            f"no built-in judge {name}@{version}",
            hint="the API runs built-in judges only (GET /api/v1/evals/judges, builtin: true); "
            "run your own judge files with `daytwo eval judge` on the host",
        )
    cand = _run(store, principal, body.run).id
    base = _run(store, principal, body.baseline).id if body.baseline else None
    if (spec.kind == "pairwise") != (base is not None):
        raise InputError(
            f"judge {spec.name} is {spec.kind}: "
            + ("give a baseline run" if base is None else "it takes no baseline"),
            hint="pairwise judges compare run and baseline; pointwise judges score one run",
        )
    runs = EvalRuns(store)
    n_cases = len({r.case_key for r in runs.results(cand)})
    if n_cases > MAX_JUDGED_CASES:
        raise InputError(
            f"run {cand[:12]} has {n_cases} cases; the API judges at most {MAX_JUDGED_CASES}",
            hint="judge it on the host: `daytwo eval judge`",
        )
    gateway = request.app.state.model_gateway
    model = GatewayJudgeModel(gateway, principal, body.model)
    spec = spec.with_model(body.model)
    if base is None:
        out = judge_pointwise(runs, model, spec, cand)
    else:
        out = judge_pairwise(runs, model, spec, cand, base)
    audit_event(
        request,
        principal,
        "eval.judge.run",
        f"{name}@{version}",
        {"run": cand, "baseline": base, "model": body.model},
    )
    return out
