"""Dashboard pages of the trace explorer: the filtered table, a session's or user's runs, and
two runs side by side.

Every page reads only the caller's tenant (runs of another tenant do not exist here: 404
as for a missing id). The table's whole state is in the query string
(:mod:`daytwo.server.explorer_query`), so an address can be shared; ``static/explorer.js``
adds keyboard navigation (j/k or arrows, Enter, /, x to mark for comparing).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from daytwo.exceptions import InputError, NotFoundError
from daytwo.server.auth import Principal
from daytwo.server.dashboard import page, render
from daytwo.server.explorer_query import (
    KINDS,
    SORTS,
    STATUSES,
    explore,
    parse_filters,
    runs_by_id,
    timeline,
)
from daytwo.server.exports import export_format, export_rows

__all__ = ["EXPORT_COLUMNS", "EXPORT_MAX"]

EXPORT_MAX = 10_000
"""Rows in one export of the explorer table (the header names the limit when reached)."""

EXPORT_COLUMNS = (
    "id",
    "kind",
    "agent",
    "version",
    "status",
    "principal",
    "session",
    "user",
    "created_at",
    "finished_at",
    "latency_ms",
    "tokens",
    "cost_usd",
    "error",
    "inputs",
    "outputs",
)


def _text(value: Any, limit: int = 140) -> str:
    """One line of a run's input or output for the table (the main field when there is one)."""
    if isinstance(value, dict):
        for key in ("question", "input", "answer", "output"):
            if key in value:
                value = value[key]
                break
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text in ("{}", "null"):
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _href(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def _compare_href(a: str, b: str) -> str:
    return "/explorer/compare?" + urlencode([("run", a), ("run", b)])


def _query(request: Request) -> dict[str, str]:
    """The query string as one value per field (a repeated field is a mistake here)."""
    out: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in out:
            raise InputError(f"filter {key!r} is given twice", hint="keep one value per filter")
        out[key] = value
    return out


@page("/explorer", title="Explorer", nav="Explorer")
def explorer_page(request: Request, principal: Principal) -> Response:
    filters = parse_filters(_query(request))
    result = explore(request.app.state.store, principal.tenant, filters)
    params = filters.params(cursor="")

    def sort_href(key: str) -> str:
        order = "asc" if filters.sort == key and filters.order == "desc" else "desc"
        return _href("/explorer", filters.params(sort=key, order=order, cursor=""))

    return render(
        request,
        "explorer.html",
        principal,
        title="Explorer",
        f=filters,
        rows=result.rows,
        text=_text,
        statuses=STATUSES,
        kinds=KINDS,
        sorts=SORTS,
        sort_href=sort_href,
        next_href=_href("/explorer", filters.params(cursor=result.next_cursor))
        if result.next_cursor
        else None,
        first_href=_href("/explorer", params) if filters.cursor else None,
        export_csv=_href("/explorer/export", {**filters.params(), "format": "csv"}),
        export_json=_href("/explorer/export", {**filters.params(), "format": "json"}),
        clear_href="/explorer",
    )


@page("/explorer/export", title="Explorer export")
def explorer_export(request: Request, principal: Principal) -> Response:
    query = _query(request)
    fmt = export_format(query)
    filters = parse_filters(query)
    store = request.app.state.store
    rows: list[dict[str, Any]] = []
    cursor = filters.cursor
    truncated = False
    while True:
        batch = explore(store, principal.tenant, replace(filters, limit=200, cursor=cursor))
        rows.extend(batch.rows)
        if batch.next_cursor is None:
            break
        if len(rows) >= EXPORT_MAX:
            truncated = True
            break
        cursor = batch.next_cursor
    return export_rows(
        rows[:EXPORT_MAX],
        EXPORT_COLUMNS,
        fmt,
        "daytwo-runs",
        truncated_at=EXPORT_MAX if truncated else None,
    )


def _timeline_page(
    request: Request, principal: Principal, *, session: str | None, user: str | None
) -> Response:
    rows, truncated = timeline(
        request.app.state.store, principal.tenant, session=session, user=user
    )
    what = f"session {session!r}" if session is not None else f"user {user!r}"
    if not rows:
        raise NotFoundError(f"no runs of {what}", hint="pick a session or user in /explorer")
    previous = None
    for row in rows:
        row["gap_s"] = (
            (row["created_at"] - previous["created_at"]).total_seconds() if previous else None
        )
        row["compare_href"] = _compare_href(previous["id"], row["id"]) if previous else None
        previous = row
    total_cost = sum(r["cost_usd"] for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    title = f"Session {session}" if session is not None else f"User {user}"
    return render(
        request,
        "session.html",
        principal,
        title=title,
        active="/explorer",
        heading=title,
        session=session,
        user=user,
        users=sorted({r["user"] for r in rows if r["user"]}),
        sessions=sorted({r["session"] for r in rows if r["session"]}),
        rows=rows,
        truncated=truncated,
        total_cost=total_cost,
        failed=failed,
        text=_text,
        filter_href=_href(
            "/explorer", {"session": session} if session is not None else {"user": user or ""}
        ),
    )


@page("/explorer/sessions/{session_id}", title="Session")
def session_page(request: Request, principal: Principal, session_id: str) -> Response:
    return _timeline_page(request, principal, session=session_id, user=None)


@page("/explorer/users/{user_id}", title="User")
def user_page(request: Request, principal: Principal, user_id: str) -> Response:
    return _timeline_page(request, principal, session=None, user=user_id)


def _aligned(a: list[Any], b: list[Any]) -> list[tuple[Any, Any]]:
    """Steps of two runs paired by name (the k-th span of a name with the k-th), in A's order
    with B's unmatched steps after the last matched one before them."""

    def keyed(steps: list[Any]) -> list[tuple[str, Any]]:
        seen: dict[str, int] = {}
        out = []
        for st in steps:
            label = f"{'  ' * st.depth}{st.name}"
            seen[label] = seen.get(label, 0) + 1
            out.append((f"{label}#{seen[label]}", st))
        return out

    ka, kb = keyed(a), keyed(b)
    in_b = dict(kb)
    pairs: list[tuple[Any, Any]] = []
    used: set[str] = set()
    for key, st in ka:
        other = in_b.get(key)
        if other is not None:
            used.add(key)
        pairs.append((st, other))
    for key, st in kb:
        if key not in used:
            pairs.append((None, st))
    return pairs


@page("/explorer/compare", title="Compare runs")
def compare_page(request: Request, principal: Principal) -> Response:
    from daytwo.server.routes.runs import run_waterfall

    ids = request.query_params.getlist("run")
    unknown = sorted(k for k in request.query_params if k != "run")
    if unknown or len(ids) != 2 or any(not 1 <= len(i) <= 64 for i in ids):
        raise InputError(
            "compare needs exactly two run ids",
            hint="open /explorer/compare?run=RUN_A&run=RUN_B (mark two runs in the explorer "
            "with x, then press c)",
        )
    store = request.app.state.store
    found = runs_by_id(store, principal.tenant, ids)
    for run_id in ids:
        if run_id not in found:
            raise NotFoundError(f"no run {run_id!r}", hint="pick runs in /explorer")
    a, b = found[ids[0]], found[ids[1]]
    wa, wb = run_waterfall(store, a["id"]), run_waterfall(store, b["id"])

    def delta(key: str) -> float | None:
        x, y = a.get(key), b.get(key)
        return None if x is None or y is None else float(y) - float(x)

    return render(
        request,
        "compare.html",
        principal,
        title="Compare runs",
        active="/explorer",
        a=a,
        b=b,
        steps=_aligned(wa.steps, wb.steps),
        deltas={k: delta(k) for k in ("latency_ms", "tokens", "cost_usd")},
        pretty=lambda v: json.dumps(v, indent=2, default=str, ensure_ascii=False),
        swap_href=_compare_href(b["id"], a["id"]),
    )
