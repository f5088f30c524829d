"""Dashboard pages of golden-set curation and human review of judges.

``/evals/sets/{name}``: a set's versions, the cases of one, the diff between two, and
the review queue of proposed (synthesized) cases with accept / edit / reject.
``/evals/add?run=REF``: add a run or an external trace to a set, its output pre-filled
as the expected output (editable). ``/evals/review`` lists the judge prompt versions;
``/evals/judges/{name}/{version}`` is the annotation queue of one (a pair is shown to a
second reviewer in the other order) with the agreement of reviewers and of judge and
humans (Cohen's κ). Pages only read; their forms post to the API (routes/curation.py,
routes/judges.py) with the session's CSRF token.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from daytwo.exceptions import InputError
from daytwo.server.auth import Principal, role_at_least
from daytwo.server.dashboard import page, render
from daytwo.server.ownership import check_visible, owners
from daytwo.server.routes.evals import KIND, visible_sets

__all__: list[str] = []


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) < 2**31:
        raise InputError(f"{name} must be a version number, not {raw!r}", hint=f"e.g. ?{name}=1")
    return int(raw)


@page("/evals/sets/{name}", title="Golden set")
def set_page(request: Request, principal: Principal, name: str) -> Response:
    from daytwo.evals.datasets import GoldenSets

    store = request.app.state.store
    check_visible(store, KIND, name, principal.tenant, "eval set")
    sets = GoldenSets(store)
    versions = sets.versions(name)
    latest = versions[-1].version if versions else None
    shown = _int_param(request, "version") or latest
    cases = sets.cases(name, shown) if shown else []
    old, new = _int_param(request, "old"), _int_param(request, "new")
    if old is None and latest is not None and latest > 1:
        old, new = latest - 1, latest
    diff = sets.diff(name, old, new) if old is not None and latest is not None else None
    diff_rows: list[dict[str, Any]] = []
    if diff is not None:
        before = {c.key: c for c in sets.cases(name, diff.old)}
        after = {c.key: c for c in sets.cases(name, diff.new)}
        changes = (("added", diff.added), ("removed", diff.removed), ("changed", diff.changed))
        for change, keys in changes:
            for key in keys:
                a, b = before.get(key), after.get(key)
                either = b if b is not None else a
                diff_rows.append(
                    {
                        "change": change,
                        "key": key,
                        "old": a.data.get("expected_output") if a else None,
                        "new": b.data.get("expected_output") if b else None,
                        "input": either.data.get("input") if either else "",
                    }
                )
    proposed = sets.proposed(name)
    owned = owners(store, KIND, [name])[name] == principal.tenant
    can_edit = owned and role_at_least(principal.role, "operator")
    return render(
        request,
        "curation_set.html",
        principal,
        title=f"Golden set {name}",
        active="/evals",
        name=name,
        versions=list(reversed(versions)),
        shown=shown,
        cases=cases,
        diff=diff,
        diff_rows=diff_rows,
        proposed=[
            {
                "id": c.id,
                "key": c.key,
                "data": c.data,
                "source": c.provenance.get("source") or c.provenance.get("method") or "",
                "json": json.dumps(
                    {k: v for k, v in c.data.items() if k != "key"}, indent=2, ensure_ascii=False
                ),
            }
            for c in proposed
        ],
        can_edit=can_edit,
    )


@page("/evals/add", title="Add to golden set")
def add_page(request: Request, principal: Principal) -> Response:
    from daytwo.evals.datasets import GoldenSets
    from daytwo.server.routes.curation import owned_promotable

    store = request.app.state.store
    ref = (request.query_params.get("run") or "").strip()
    if not ref:
        raise InputError(
            "name the run to add: /evals/add?run=RUN_ID",
            hint="open a run or a trace and use its 'Add to golden set' link",
        )
    run = owned_promotable(store, principal, ref)
    names = visible_sets(store, principal.tenant)
    own = owners(store, KIND, names)
    sets = [n for n in names if own[n] == principal.tenant]
    wanted = request.query_params.get("set")
    gs = GoldenSets(store)
    return render(
        request,
        "curation_add.html",
        principal,
        title="Add to golden set",
        active="/evals",
        ref=ref,
        run=run,
        sets=[{"name": n, "latest": next(reversed(gs.versions(n)), None)} for n in sets],
        selected=wanted if wanted in sets else (sets[0] if sets else None),
        can_add=role_at_least(principal.role, "operator"),
    )


@page("/evals/review", title="Review", nav="Review")
def review_page(request: Request, principal: Principal) -> Response:
    from daytwo.server.routes.judges import tenant_judges

    judges = tenant_judges(request.app.state.store, principal.tenant)
    return render(
        request,
        "review.html",
        principal,
        title="Review",
        judges=judges,
        sets=visible_sets(request.app.state.store, principal.tenant),
    )


@page("/evals/judges/{name}/{version}", title="Judge")
def judge_page(request: Request, principal: Principal, name: str, version: str) -> Response:
    from daytwo.evals.annotations import agreement, next_item, verdicts
    from daytwo.server.routes.judges import tenant_judge
    from daytwo.server.tenancy import principal_string

    store = request.app.state.store
    judge, scope = tenant_judge(store, principal.tenant, name, version)
    can_label = role_at_least(principal.role, "operator")
    item = next_item(store, judge, principal_string(principal), scope) if can_label else None
    return render(
        request,
        "judge.html",
        principal,
        title=f"Judge {name}@{version}",
        active="/evals/review",
        judge=judge,
        item=item,
        can_label=can_label,
        agree=agreement(store, judge, scope),
        verdicts=verdicts(store, judge, scope, limit=200),
    )
