"""Run health of one tenant over a window, aggregated in SQL: the overview's figures.

Three grouped statements over ``runtime_runs`` (its covering index
``ix_runtime_runs_health`` starts with ``created_at``, so a window is an index range
and no run row is read by the first two):

- per agent@version, status and latency bucket: run counts, cost, tokens and the
  latency histogram the percentiles are read from;
- per agent@version and hour (24 h window) or day: runs, failures, cost, for the
  sparklines;
- failed and cancelled runs per agent@version and error kind (the error's text up to
  its first colon, which is how the runtime words its failures: ``step 'x' failed``,
  ``budget exceeded``, ``the run could not start``).

A run's latency is ``finished_at - created_at``, stored with its histogram bucket
``floor(16 ln ms)`` when the run ends (``runtime/records.end_run``), so nothing is
computed per row here. p50/p95 come from the histogram: a reported percentile is the
bucket's geometric middle, within ±3.2 % of the exact value. The run's cost is the
runtime's own figure (it equals the ledger's sum for the run).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from daytwo.exceptions import InputError
from daytwo.runtime.records import LATENCY_BUCKETS_PER_E
from daytwo.server.tenancy import tenant_clause
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.runtime import RunRecord

__all__ = ["WINDOWS", "AgentHealth", "RunHealth", "Window", "run_health", "window_of"]


@dataclass(frozen=True)
class Window:
    """A look-back window of the overview: its URL value, label, length and step."""

    key: str
    label: str
    length: timedelta
    hourly: bool

    @property
    def steps(self) -> int:
        """How many sparkline points (hours or days) the window holds."""
        unit = timedelta(hours=1) if self.hourly else timedelta(days=1)
        return int(self.length / unit)


WINDOWS = {
    "24h": Window("24h", "24 h", timedelta(hours=24), hourly=True),
    "7d": Window("7d", "7 days", timedelta(days=7), hourly=False),
    "30d": Window("30d", "30 days", timedelta(days=30), hourly=False),
}


def window_of(value: str | None) -> Window:
    """The window named in the URL (default 24h); InputError names the choices."""
    if value is None or value == "":
        return WINDOWS["24h"]
    try:
        return WINDOWS[value]
    except KeyError:
        raise InputError(
            f"unknown window {value[:20]!r}",
            hint=f"use one of {', '.join(WINDOWS)} (for example ?window=7d)",
        ) from None


@dataclass
class AgentHealth:
    """Figures of one agent@version (or of the whole tenant) over the window."""

    agent: str
    version: int | None
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    unfinished: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    series_runs: list[float | None] = field(default_factory=list)
    series_error_rate: list[float | None] = field(default_factory=list)
    series_cost: list[float | None] = field(default_factory=list)
    histogram: dict[int, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.agent if self.version is None else f"{self.agent}@{self.version}"

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def success_rate(self) -> float | None:
        """Succeeded among finished runs (None before any finished)."""
        return self.succeeded / self.finished if self.finished else None

    @property
    def cost_per_run(self) -> float | None:
        return self.cost_usd / self.runs if self.runs else None

    def as_dict(self, days: float) -> dict[str, Any]:
        """JSON-friendly (the CSV/JSON export and the API of the page)."""
        return {
            "agent": self.agent,
            "version": self.version,
            "runs": self.runs,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "unfinished": self.unfinished,
            "success_rate": self.success_rate,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "cost_usd": self.cost_usd,
            "cost_per_run_usd": self.cost_per_run,
            "cost_per_day_usd": self.cost_usd / days,
            "tokens": self.tokens,
            "errors": dict(self.errors),
        }


@dataclass
class RunHealth:
    """The tenant's total and its agents' figures over one window."""

    window: Window
    since: datetime
    until: datetime
    total: AgentHealth
    agents: list[AgentHealth]
    buckets: list[str]

    @property
    def days(self) -> float:
        return self.window.length / timedelta(days=1)


def _dialect(store: Store) -> str:
    return store.engine.dialect.name


def _time_bucket(dialect: str, hourly: bool) -> sa.ColumnElement[Any]:
    """The hour or day of a run's creation (UTC); read back through ``str(...)[:13|10]``."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)
        return sa.func.substr(RunRecord.created_at, 1, 13 if hourly else 10, type_=sa.String)
    # date_trunc, not to_char: formatting text for every row of a 30-day window cost
    # PostgreSQL 10-40 ms of the overview's ~100 ms of SQL (100k runs).
    return sa.func.date_trunc(
        "hour" if hourly else "day", sa.func.timezone("UTC", RunRecord.created_at)
    )


def _error_kind(dialect: str) -> sa.ColumnElement[str]:
    err = sa.func.coalesce(RunRecord.error, "")
    if dialect == "sqlite":
        head = sa.func.substr(err, 1, sa.func.instr(err + ":", ":") - 1, type_=sa.String)
    else:
        head = sa.func.split_part(err, ":", 1, type_=sa.String)
    return sa.func.substr(head, 1, 80, type_=sa.String)


def _bucket_keys(window: Window, until: datetime) -> list[str]:
    """The hour or day keys of the window, oldest first, as the SQL renders them."""
    if window.hourly:
        end = until.replace(minute=0, second=0, microsecond=0)
        return [(end - timedelta(hours=i)).strftime("%Y-%m-%d %H") for i in range(window.steps)][
            ::-1
        ]
    end_day = until.replace(hour=0, minute=0, second=0, microsecond=0)
    return [(end_day - timedelta(days=i)).strftime("%Y-%m-%d") for i in range(window.steps)][::-1]


def quantile(histogram: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile of a log-bucketed latency histogram (bucket's geometric middle)."""
    n = sum(histogram.values())
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return math.exp((bucket + 0.5) / LATENCY_BUCKETS_PER_E)
    return None  # pragma: no cover - the loop always reaches rank


def run_health(
    store: Store, tenant: str, window: Window, *, until: datetime | None = None
) -> RunHealth:
    """Figures of ``tenant``'s runs created in ``window`` before ``until`` (default now)."""
    until = until or utcnow()
    since = until - window.length
    dialect = _dialect(store)
    where = sa.and_(
        RunRecord.created_at >= since,
        RunRecord.created_at <= until,
        tenant_clause(RunRecord.principal, tenant),
    )
    lat_bucket = RunRecord.latency_bucket
    when = _time_bucket(dialect, window.hourly)
    kind = _error_kind(dialect)
    by_status = (
        sa.select(
            RunRecord.agent_name,
            RunRecord.agent_version,
            RunRecord.status,
            lat_bucket,
            sa.func.count(),
            sa.func.sum(RunRecord.cost_usd),
            sa.func.sum(RunRecord.tokens),
        )
        .where(where)
        .group_by(RunRecord.agent_name, RunRecord.agent_version, RunRecord.status, lat_bucket)
    )
    by_time = (
        sa.select(
            RunRecord.agent_name,
            RunRecord.agent_version,
            when,
            sa.func.count(),
            sa.func.sum(sa.case((RunRecord.status == "failed", 1), else_=0)),
            sa.func.sum(RunRecord.cost_usd),
        )
        .where(where)
        .group_by(RunRecord.agent_name, RunRecord.agent_version, when)
    )
    by_error = (
        sa.select(
            RunRecord.agent_name, RunRecord.agent_version, RunRecord.status, kind, sa.func.count()
        )
        .where(where, RunRecord.status.in_(("failed", "cancelled")))
        .group_by(RunRecord.agent_name, RunRecord.agent_version, RunRecord.status, kind)
    )
    with store.session(snapshot=True) as s:
        status_rows = s.execute(by_status).all()
        time_rows = s.execute(by_time).all()
        error_rows = s.execute(by_error).all()

    total = AgentHealth(agent="all agents", version=None)
    agents: dict[tuple[str, int], AgentHealth] = {}

    def of(name: str, version: int) -> AgentHealth:
        key = (name, int(version))
        if key not in agents:
            agents[key] = AgentHealth(agent=name, version=int(version))
        return agents[key]

    for name, version, status, bucket, count, cost, tokens in status_rows:
        for h in (of(name, version), total):
            h.runs += count
            h.cost_usd += float(cost or 0.0)
            h.tokens += int(tokens or 0)
            if status == "succeeded":
                h.succeeded += count
            elif status == "failed":
                h.failed += count
            elif status == "cancelled":
                h.cancelled += count
            else:
                h.unfinished += count
            if bucket is not None and status in ("succeeded", "failed"):
                h.histogram[int(bucket)] = h.histogram.get(int(bucket), 0) + count

    keys = _bucket_keys(window, until)
    index = {k: i for i, k in enumerate(keys)}
    counts: dict[tuple[str, int] | None, list[list[float]]] = defaultdict(
        lambda: [[0.0] * len(keys), [0.0] * len(keys), [0.0] * len(keys)]
    )
    for name, version, at, count, failed, cost in time_rows:
        i = index.get(str(at).replace("T", " ")[: 13 if window.hourly else 10])
        if i is None:
            continue  # the oldest partial hour or day of the window
        for key in ((name, int(version)), None):
            c = counts[key]
            c[0][i] += count
            c[1][i] += failed or 0
            c[2][i] += float(cost or 0.0)
    for key, h in [*agents.items(), (None, total)]:
        day_runs, day_failed, day_cost = counts[key]
        h.series_runs = list(day_runs)
        h.series_error_rate = [
            f / r if r else None for f, r in zip(day_failed, day_runs, strict=True)
        ]
        h.series_cost = list(day_cost)
        h.p50_ms = quantile(h.histogram, 0.50)
        h.p95_ms = quantile(h.histogram, 0.95)

    for name, version, status, err_kind, count in error_rows:
        label = "cancelled" if status == "cancelled" else (err_kind or "failed (no message)")
        for h in (of(name, version), total):
            h.errors[label] = h.errors.get(label, 0) + count
    ordered = sorted(agents.values(), key=lambda h: (h.agent, -(h.version or 0)))
    return RunHealth(window, since, until, total, ordered, keys)
