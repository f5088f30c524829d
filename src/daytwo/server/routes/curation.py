"""Golden-set curation over the API: create a set, promote a run or trace, review, diff.

Every call names a set the caller's tenant owns (writing) or sees (reading); the run
or trace promoted must be the tenant's too (a runtime run, an OTLP trace with the
tenant's spans, or a result of one of the tenant's eval runs). Promoting reuses
``evals.promote`` (the case keeps the trace id, inputs, tool calls and retrieved ids);
a review decision (accept, edit, reject, with a reason) writes the new set version and
an audit record in one request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from daytwo.evals.cases import Case
from daytwo.evals.promote import PromotedRun
from daytwo.exceptions import NotFoundError
from daytwo.server.auth import Principal
from daytwo.server.deps import Operator, Viewer, get_store
from daytwo.server.errors import ERROR_RESPONSES
from daytwo.server.events import audit_event
from daytwo.server.ownership import check_owned, check_visible, claim, release
from daytwo.server.routes.evals import KIND, eval_runs_of
from daytwo.server.tenancy import principal_string
from daytwo.store import Store

__all__ = ["owned_promotable", "router"]

router = APIRouter(prefix="/api/v1/evals", tags=["evals"], responses=ERROR_RESPONSES)
StoreDep = Annotated[Store, Depends(get_store)]
SetName = Annotated[
    str, Path(min_length=1, max_length=200, pattern=r"^[^@/]+$", description="Golden set name.")
]
VersionNo = Annotated[int, Path(ge=1, le=2**31 - 1, description="Set version.")]


class SetCreate(BaseModel):
    """A new, empty golden set owned by the caller's tenant."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^@/]+$")
    description: str = Field(default="", max_length=2000)


class VersionOut(BaseModel):
    """A set version (``changed`` False: nothing changed, no version was written)."""

    set: str
    version: int
    cases: int
    content_hash: str
    note: str
    created_at: str
    changed: bool


class CaseOut(BaseModel):
    """A stored case: row id, key, status, content and where it came from."""

    id: str
    key: str
    status: str
    data: dict[str, Any]
    provenance: dict[str, Any]


class DiffOut(BaseModel):
    """Keys added, removed and changed between two versions."""

    set: str
    old: int
    new: int
    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: int


class PromoteIn(BaseModel):
    """Add a run (runtime run id, ``otlp-<trace id>`` or eval result id) as a case."""

    run: str = Field(min_length=6, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    expected_output: str | None = Field(default=None, max_length=100_000)
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=32
    )
    force: bool = Field(default=False, description="Add even a near-duplicate of a case.")


class PromoteOut(BaseModel):
    """The new version and the case as stored."""

    set: str
    new_version: int
    version: VersionOut
    case: dict[str, Any]


class DecisionIn(BaseModel):
    """Accept, edit or reject a proposed case; a reason is required to edit or reject."""

    action: Literal["accept", "edit", "reject"]
    reason: str = Field(default="", max_length=2000)
    case: Case | None = Field(default=None, description="The corrected case (action edit).")


class DecisionOut(BaseModel):
    case: CaseOut
    version: VersionOut | None


def _version(info: Any) -> VersionOut:
    return VersionOut.model_validate(info.as_dict())


def _case(c: Any) -> CaseOut:
    return CaseOut(id=c.id, key=c.key, status=c.status, data=c.data, provenance=c.provenance)


class _Fetched:
    """A run source that returns the one run already checked for the tenant."""

    def __init__(self, run: PromotedRun) -> None:
        self.run = run

    def fetch(self, run_id: str) -> PromotedRun | None:
        return self.run


def owned_promotable(store: Store, principal: Principal, ref: str) -> PromotedRun:
    """The tenant's run, trace or eval result ``ref`` as a promotable run (else 404)."""
    from daytwo.evals.promote import EvalResultSource, RuntimeRunSource, TraceRunSource
    from daytwo.server.routes.runs import owned_run
    from daytwo.server.routes.traces import owned_trace

    missing = NotFoundError(
        f"no run, trace or eval result {ref!r}",
        hint="pass a run id, otlp-<trace id> or an eval result id of your tenant",
    )
    try:
        owned_run(store, principal, ref)
    except NotFoundError:
        pass
    else:
        found = RuntimeRunSource(store).fetch(ref)
        if found is not None:
            return found
    trace = ref.removeprefix("otlp-").lower()
    if len(trace) == 32:
        try:
            owned_trace(store, principal.tenant, trace)
        except NotFoundError:
            pass
        else:
            found = TraceRunSource(store).fetch(trace)
            if found is not None:
                return found
    result = EvalResultSource(store).fetch(ref)
    if result is not None:
        from daytwo.store.tables.evals import EvalResult

        with store.session() as s:
            row = s.get(EvalResult, result.run_id)
            run_id = row.run_id if row is not None else ""
        if run_id in {r.id for r in eval_runs_of(store, principal.tenant)}:
            return result
    raise missing


@router.post("/sets", response_model=SetCreate, status_code=201, summary="Create a set")
def create_set(
    body: SetCreate, principal: Operator, store: StoreDep, request: Request
) -> SetCreate:
    """An empty set owned by the caller's tenant (its first version comes with its cases)."""
    from daytwo.evals.datasets import GoldenSets

    sets = GoldenSets(store)
    claimed = claim(
        store, KIND, body.name, principal.tenant, "eval set", exists=sets.exists(body.name)
    )
    try:
        sets.create(body.name, body.description)
    except Exception:
        if claimed:
            release(store, KIND, body.name)
        raise
    audit_event(request, principal, "eval.set.create", body.name)
    return body


@router.get(
    "/sets/{name}/versions/{version}/cases",
    response_model=list[CaseOut],
    summary="Cases of a set version",
)
def version_cases(name: SetName, version: VersionNo, principal: Viewer, store: StoreDep) -> Any:
    from daytwo.evals.datasets import GoldenSets

    check_visible(store, KIND, name, principal.tenant, "eval set")
    return [_case(c) for c in GoldenSets(store).cases(name, version)]


@router.get("/sets/{name}/diff", response_model=DiffOut, summary="Diff two set versions")
def diff(
    name: SetName,
    principal: Viewer,
    store: StoreDep,
    old: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    new: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> DiffOut:
    """Keys added, removed and changed from ``old`` to ``new``.

    ``new`` defaults to the latest version, ``old`` to the one before ``new``.
    """
    from daytwo.evals.datasets import GoldenSets

    check_visible(store, KIND, name, principal.tenant, "eval set")
    sets = GoldenSets(store)
    if old is None:
        newest = new if new is not None else sets.resolve(name).version
        old = max(newest - 1, 1)
    return DiffOut.model_validate(sets.diff(name, old, new).as_dict())


@router.post("/sets/{name}/promote", response_model=PromoteOut, summary="Add a run to a set")
def promote_run(
    name: SetName, body: PromoteIn, principal: Operator, store: StoreDep, request: Request
) -> PromoteOut:
    """The run becomes a case of a new version (expected output as given, else none)."""
    from daytwo.evals.dedup import default_embedder
    from daytwo.evals.promote import promote

    check_owned(store, KIND, name, principal.tenant, "eval set")
    run = owned_promotable(store, principal, body.run)
    settings = request.app.state.settings  # the same embedder and threshold as the CLI's
    info, case = promote(
        store,
        body.run,
        set_name=name,
        tags=body.tags,
        sources=[_Fetched(run)],
        expected_output=body.expected_output,
        embedder=default_embedder(settings.embedder),
        threshold=settings.eval_near_duplicate_threshold,
        force=body.force,
    )
    audit_event(
        request,
        principal,
        "eval.case.promote",
        f"{name}/{case.resolved_key()}",
        {"run": run.run_id, "trace_id": run.trace_id, "version": info.version},
    )
    return PromoteOut(
        set=name, new_version=info.version, version=_version(info), case=case.content()
    )


@router.get("/sets/{name}/proposed", response_model=list[CaseOut], summary="Cases to review")
def proposed(name: SetName, principal: Viewer, store: StoreDep) -> Any:
    """Synthesized or proposed cases waiting for a decision."""
    from daytwo.evals.datasets import GoldenSets

    check_visible(store, KIND, name, principal.tenant, "eval set")
    return [_case(c) for c in GoldenSets(store).proposed(name)]


@router.post(
    "/sets/{name}/proposed/{case_id}",
    response_model=DecisionOut,
    summary="Accept, edit or reject a proposed case",
)
def decide(
    name: SetName,
    case_id: Annotated[str, Path(min_length=4, max_length=200)],
    body: DecisionIn,
    principal: Operator,
    store: StoreDep,
    request: Request,
) -> DecisionOut:
    """Accepting or editing writes a new version; the decision and reason are audited."""
    from daytwo.evals.datasets import GoldenSets

    check_owned(store, KIND, name, principal.tenant, "eval set")
    decided, info = GoldenSets(store).decide(
        name,
        case_id,
        body.action,
        reason=body.reason,
        reviewer=principal_string(principal),
        edited=body.case,
    )
    audit_event(
        request,
        principal,
        "eval.case.review",
        f"{name}/{decided.key}",
        {
            "action": body.action,
            "reason": body.reason.strip(),
            "case_id": decided.id,
            "version": info.version if info is not None else None,
        },
    )
    return DecisionOut(case=_case(decided), version=_version(info) if info else None)
