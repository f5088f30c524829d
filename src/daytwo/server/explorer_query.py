"""The trace explorer's query: a tenant's runs and external traces, filtered, sorted, by cursor.

Runs of daytwo agents and traces sent over OTLP (listed as runs ``otlp-<trace id>``) are
rows of ``runtime_runs``; one query serves both. Every filter is a query-string field
(:func:`parse_filters`), so a URL is the whole state of the table. Pages follow a keyset
cursor over (sort key, id), never OFFSET: page 2,000 costs what page 1 does.

A run's model and tool calls are spans without a run id, found through the run's trace
(partial indexes model→trace, tool→trace, trace→run, migration 0340). Free text is a
case-insensitive substring of the inputs, outputs or error, found through a trigram
index (:mod:`daytwo.store.run_text`, migration 0505) and ANDed with the tenant and the
other filters, so it composes with the keyset cursor like any filter.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from daytwo.exceptions import InputError
from daytwo.server.tenancy import tenant_clause
from daytwo.store import Store, run_text
from daytwo.store.tables.runtime import RunRecord
from daytwo.store.tables.tracing import SpanRow
from daytwo.tracing.ingest import EXTERNAL_RUN_PREFIX

__all__ = [
    "KINDS",
    "SORTS",
    "STATUSES",
    "ExplorerPage",
    "Filters",
    "explore",
    "latency_ms",
    "parse_filters",
    "run_rows",
    "runs_by_id",
    "timeline",
]

STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")
SORTS = ("started", "cost", "latency", "tokens")
KINDS = ("runtime", "external")
MAX_LIMIT = 200
_NAME = re.compile(r"^[\w.@:/+ -]{1,255}$")


@dataclass(frozen=True)
class Filters:
    """One state of the explorer table (every field is a query-string parameter)."""

    agent: str = ""
    version: int | None = None
    status: str = ""
    kind: str = ""
    principal: str = ""
    session: str = ""
    user: str = ""
    model: str = ""
    tool: str = ""
    cost_min: float | None = None
    cost_max: float | None = None
    latency_min: float | None = None
    latency_max: float | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str = ""
    sort: str = "started"
    order: str = "desc"
    limit: int = 50
    cursor: str = ""

    def params(self, **changes: Any) -> dict[str, str]:
        """The query-string fields of this state (defaults left out), with ``changes``."""
        state = replace(self, **changes)
        out: dict[str, str] = {}
        for f in fields(state):
            value = getattr(state, f.name)
            if value is None or value == "" or value == f.default:
                continue
            if isinstance(value, datetime):
                value = value.isoformat().replace("+00:00", "Z")
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            out[f.name] = str(value)
        return out

    @property
    def filtered(self) -> bool:
        """True when any filter (not the sort or the page) is set."""
        keep = {"sort", "order", "limit", "cursor"}
        return any(k not in keep for k in self.params())


def _bad(field: str, value: str, expected: str) -> InputError:
    shown = value if len(value) <= 60 else value[:60] + "…"
    return InputError(
        f"filter {field}={shown!r} is not {expected}",
        hint=f"fix or remove {field} in the address (e.g. clear the field and filter again)",
    )


def _number(field: str, raw: str, *, integer: bool = False) -> float | int:
    try:
        value: float | int = int(raw) if integer else float(raw)
    except ValueError:
        raise _bad(field, raw, "a whole number" if integer else "a number") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise _bad(field, raw, "a number of zero or more")
    return value


def _time(field: str, raw: str) -> datetime:
    text = raw.strip().replace(" ", "T")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(
            field, raw, "an ISO 8601 date or time (2026-12-01 or 2026-12-01T09:30Z)"
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _choice(field: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise _bad(field, raw, f"one of {', '.join(allowed)}")
    return raw


def parse_filters(query: Mapping[str, str]) -> Filters:
    """The explorer state of a query string; InputError naming the first bad field."""
    known = {f.name for f in fields(Filters)}
    # export and format select a download of the page (server/exports.py).
    unknown = sorted(k for k in query if k not in known and k not in ("export", "format"))
    if unknown:
        raise InputError(
            f"unknown filter {unknown[0]!r}",
            hint=f"the explorer filters by: {', '.join(sorted(known))}",
        )
    values: dict[str, Any] = {}
    for name in ("agent", "principal", "session", "user", "model", "tool"):
        raw = query.get(name, "").strip()
        if raw and not _NAME.match(raw):
            raise _bad(name, raw, "a name (letters, digits and . _ @ : / + - up to 255)")
        values[name] = raw
    q = query.get("q", "").strip()
    if len(q) > 200:
        raise _bad("q", q, "at most 200 characters")
    if any(ch < " " and ch not in "\t\n\r" for ch in q):
        raise _bad("q", q.encode("unicode_escape").decode(), "text (no control characters)")
    values["q"] = q
    if raw := query.get("status", ""):
        values["status"] = _choice("status", raw, STATUSES)
    if raw := query.get("kind", ""):
        values["kind"] = _choice("kind", raw, KINDS)
    if raw := query.get("sort", ""):
        values["sort"] = _choice("sort", raw, SORTS)
    if raw := query.get("order", ""):
        values["order"] = _choice("order", raw, ("desc", "asc"))
    if raw := query.get("version", "").strip():
        values["version"] = int(_number("version", raw, integer=True))
    for name in ("cost_min", "cost_max", "latency_min", "latency_max"):
        if raw := query.get(name, "").strip():
            values[name] = float(_number(name, raw))
    for name in ("since", "until"):
        if raw := query.get(name, "").strip():
            values[name] = _time(name, raw)
    if raw := query.get("limit", "").strip():
        limit = int(_number("limit", raw, integer=True))
        if not 1 <= limit <= MAX_LIMIT:
            raise _bad("limit", raw, f"between 1 and {MAX_LIMIT}")
        values["limit"] = limit
    values["cursor"] = query.get("cursor", "")
    filters = Filters(**values)
    for low, high in (("cost_min", "cost_max"), ("latency_min", "latency_max"), ("since", "until")):
        a, b = getattr(filters, low), getattr(filters, high)
        if a is not None and b is not None and a > b:
            raise InputError(
                f"filter {low} is above {high}", hint=f"swap them, or clear one of {low}, {high}"
            )
    if filters.cursor:
        _decode_cursor(filters)
    return filters


def latency_ms(dialect: str) -> sa.ColumnElement[float]:
    """A run's wall time in ms (finished - created); -1 while it has not finished.

    The value ``runtime.records.end_run`` stores when the run ends (``dialect`` is kept for
    the callers; the stored column reads the same on both backends)."""
    del dialect
    return sa.func.coalesce(RunRecord.latency_ms, -1.0)


def _sort_column(sort: str, dialect: str) -> sa.ColumnElement[Any]:
    if sort == "cost":
        return RunRecord.cost_usd  # type: ignore[return-value]
    if sort == "tokens":
        return RunRecord.tokens  # type: ignore[return-value]
    if sort == "latency":
        return latency_ms(dialect)
    return RunRecord.created_at  # type: ignore[return-value]


def _encode_cursor(filters: Filters, value: Any, run_id: str) -> str:
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat()
    raw = json.dumps([filters.sort, filters.order, value, run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(filters: Filters) -> tuple[Any, str]:
    bad = InputError(
        "the page cursor is not one this table gave out",
        hint="go back to the first page (remove cursor from the address)",
    )
    try:
        padded = filters.cursor + "=" * (-len(filters.cursor) % 4)
        sort, order, value, run_id = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError, binascii.Error):
        raise bad from None
    if sort != filters.sort or order != filters.order or not isinstance(run_id, str):
        raise bad
    if sort == "started":
        if not isinstance(value, str):
            raise bad
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise bad from None
    elif not isinstance(value, (int, float)) or isinstance(value, bool):
        raise bad
    return value, run_id


COMMON = 5000
"""Spans of one model or tool above which runs are walked in order and probed (EXISTS)
rather than collected first (IN): a common value fills a page within a few runs, a rare
one would make the walk visit every run."""


def _used(kind: str, value: str) -> tuple[Any, sa.ColumnElement[bool]]:
    """A span alias and the condition ``value`` is its model or tool.

    The conditions repeat the partial indexes' predicates literally (not as bound
    parameters), so both SQLite and PostgreSQL can prove the indexes usable.
    """
    used = sa.orm.aliased(SpanRow, name=f"used_{kind}")
    if kind == "model":
        return used, sa.and_(used.model == value, used.model.is_not(None))
    return used, sa.and_(
        used.operation == sa.literal_column("'execute_tool'"),
        used.name == f"execute_tool {value}",
    )


def _used_by(s: Any, kind: str, value: str) -> sa.ColumnElement[bool]:
    """The runs whose trace holds a span of model or tool ``value``."""
    used, condition = _used(kind, value)
    owner = sa.orm.aliased(SpanRow, name=f"owner_{kind}")
    spans = s.scalar(
        sa.select(sa.func.count()).select_from(
            sa.select(used.trace_id).where(condition).limit(COMMON).subquery()
        )
    )
    if spans >= COMMON:
        probe = sa.select(used.span_id).where(condition, used.trace_id == owner.trace_id)
        return sa.exists(
            sa.select(owner.span_id).where(owner.run_id == RunRecord.id, sa.exists(probe))
        )
    ids = (
        sa.select(owner.run_id)
        .join(used, used.trace_id == owner.trace_id)
        .where(condition, owner.run_id.is_not(None))
    )
    return RunRecord.id.in_(ids)


def _where(filters: Filters, tenant: str, dialect: str, s: Any) -> list[sa.ColumnElement[bool]]:
    r = RunRecord
    out: list[sa.ColumnElement[bool]] = [tenant_clause(r.principal, tenant)]
    if filters.agent:
        out.append(r.agent_name == filters.agent)
    if filters.version is not None:
        out.append(r.agent_version == filters.version)
    if filters.status:
        out.append(r.status == filters.status)
    if filters.kind == "external":
        out.append(r.id.startswith(EXTERNAL_RUN_PREFIX, autoescape=True))
    elif filters.kind == "runtime":
        out.append(~r.id.startswith(EXTERNAL_RUN_PREFIX, autoescape=True))
    if filters.principal:
        out.append(r.principal == filters.principal)
    if filters.session:
        out.append(r.session_id == filters.session)
    if filters.user:
        out.append(r.user_id == filters.user)
    if filters.model:
        out.append(_used_by(s, "model", filters.model))
    if filters.tool:
        out.append(_used_by(s, "tool", filters.tool))
    if filters.cost_min is not None:
        out.append(r.cost_usd >= filters.cost_min)
    if filters.cost_max is not None:
        out.append(r.cost_usd <= filters.cost_max)
    if filters.latency_min is not None:
        out.append(latency_ms(dialect) >= filters.latency_min)
    if filters.latency_max is not None:
        lat = latency_ms(dialect)
        out.append(sa.and_(lat >= 0, lat <= filters.latency_max))
    if filters.since is not None:
        out.append(r.created_at >= filters.since)
    if filters.until is not None:
        out.append(r.created_at < filters.until)
    if filters.q:
        out.append(_text_holds(filters.q, dialect))
    return out


def _text_holds(fragment: str, dialect: str) -> sa.ColumnElement[bool]:
    """Runs whose inputs, outputs or error hold ``fragment`` (any case), through the
    trigram index of :mod:`daytwo.store.run_text` when the fragment has a trigram."""
    r = RunRecord
    if dialect == "sqlite" and len(fragment) >= run_text.MIN_INDEXED:
        return sa.literal_column("runtime_runs.rowid").in_(run_text.sqlite_rowids(fragment))
    empty: sa.ColumnElement[str] = sa.literal_column("''")
    space: sa.ColumnElement[str] = sa.literal_column("' '")
    text = (
        sa.func.coalesce(sa.cast(r.inputs, sa.Text), empty)
        + space
        + sa.func.coalesce(sa.cast(r.outputs, sa.Text), empty)
        + space
        + sa.func.coalesce(r.error, empty)
    )
    if dialect == "sqlite":  # LIKE is case-insensitive (ASCII) on SQLite
        return text.contains(fragment, autoescape=True)
    return text.icontains(fragment, autoescape=True)


@dataclass
class ExplorerPage:
    """One page of the table and the cursors around it."""

    rows: list[dict[str, Any]]
    next_cursor: str | None
    filters: Filters


def run_rows(rows: Any) -> list[dict[str, Any]]:
    """Table rows (plain values) of ``(RunRecord, latency_ms)`` results."""
    out = []
    for run, latency in rows:
        out.append(
            {
                "id": run.id,
                "kind": "external" if run.id.startswith(EXTERNAL_RUN_PREFIX) else "runtime",
                "agent": run.agent_name,
                "version": run.agent_version,
                "status": run.status,
                "principal": run.principal,
                "session": run.session_id,
                "user": run.user_id,
                "created_at": run.created_at,
                "finished_at": run.finished_at,
                "latency_ms": None if latency is None or latency < 0 else float(latency),
                "tokens": run.tokens,
                "cost_usd": run.cost_usd,
                "error": run.error,
                "inputs": run.inputs,
                "outputs": run.outputs,
            }
        )
    return out


def explore(store: Store, tenant: str, filters: Filters) -> ExplorerPage:
    """One page of ``tenant``'s runs matching ``filters`` (InputError on a bad cursor)."""
    dialect = store.engine.dialect.name
    with store.session() as s:
        found = s.execute(_query(filters, tenant, dialect, s)).all()
    more = len(found) > filters.limit
    found = found[: filters.limit]
    rows = run_rows(found)
    cursor = None
    if more and rows:
        last = rows[-1]
        value = {
            "started": last["created_at"],
            "cost": last["cost_usd"],
            "tokens": last["tokens"],
            "latency": found[-1][1],
        }[filters.sort]
        cursor = _encode_cursor(filters, value, last["id"])
    return ExplorerPage(rows=rows, next_cursor=cursor, filters=filters)


def _query(filters: Filters, tenant: str, dialect: str, s: Any) -> sa.Select[RunRecord, float]:
    key = _sort_column(filters.sort, dialect)
    desc = filters.order == "desc"
    q = sa.select(RunRecord, latency_ms(dialect))
    q = q.where(*_where(filters, tenant, dialect, s))
    if filters.cursor:
        value, run_id = _decode_cursor(filters)
        after = sa.tuple_(key, RunRecord.id)
        bound = sa.tuple_(sa.literal(value, type_=key.type), sa.literal(run_id))
        q = q.where(after < bound if desc else after > bound)
    if desc:
        q = q.order_by(key.desc(), RunRecord.id.desc())
    else:
        q = q.order_by(key.asc(), RunRecord.id.asc())
    return q.limit(filters.limit + 1)


TIMELINE_MAX = 500


def timeline(
    store: Store, tenant: str, *, session: str | None = None, user: str | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """A session's or an end user's runs, oldest first (the latest :data:`TIMELINE_MAX`).

    Returns (rows, truncated); rows of another tenant are never included.
    """
    dialect = store.engine.dialect.name
    q = sa.select(RunRecord, latency_ms(dialect)).where(tenant_clause(RunRecord.principal, tenant))
    if session is not None:
        q = q.where(RunRecord.session_id == session)
    if user is not None:
        q = q.where(RunRecord.user_id == user)
    q = q.order_by(RunRecord.created_at.desc(), RunRecord.id.desc()).limit(TIMELINE_MAX + 1)
    with store.session() as s:
        found = s.execute(q).all()
    truncated = len(found) > TIMELINE_MAX
    rows = run_rows(found[:TIMELINE_MAX])
    rows.reverse()
    return rows, truncated


def runs_by_id(store: Store, tenant: str, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The runs among ``run_ids`` that belong to ``tenant``, by id."""
    dialect = store.engine.dialect.name
    q = sa.select(RunRecord, latency_ms(dialect)).where(
        RunRecord.id.in_(run_ids), tenant_clause(RunRecord.principal, tenant)
    )
    with store.session() as s:
        return {row["id"]: row for row in run_rows(s.execute(q).all())}
