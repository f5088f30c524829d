"""Seed a store with many runs, their spans and costs, by bulk inserts (not by running agents).

For tests and benchmarks of everything that reads runs at scale (the dashboard's health
page, the trace explorer, cost roll-ups): :func:`seed_runs` writes ``n`` runs spread over
the last ``days`` days across several tenants, principals, agents and versions, end users
and sessions, models and tools, with realistic failures, plus a few external (OTLP) traces
listed as runs ``otlp-<trace id>``. The rows have the shape the runtime, the span
processor and OTLP ingest write:

- a runtime run's ``run <agent>`` span and its ``step <id>`` spans carry the run id; the
  ``chat <model>`` and ``execute_tool <tool>`` spans below them do not (they are found
  through the trace, as the ledger does);
- model calls are priced (``cost_status`` ``priced``, exact decimal text) and a run's
  ``cost_usd`` is the sum of its calls' costs;
- an external trace's spans all carry the run id, the tenant and the principal.

The same ``seed`` gives the same rows. One run is special, :attr:`SeededRuns.needle`:
a failing run of tenant ``acme`` whose question holds :data:`NEEDLE_PHRASE` (no other
run's does), whose session goes on for a few more turns (given a few hundred runs) — a
test can filter down to exactly it.

Rows go straight to the driver in batches (``COPY`` on PostgreSQL), each batch in one
write transaction: 100k runs (433k spans) take about 30 s on SQLite or PostgreSQL on a quiet
machine.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from daytwo.runtime.records import run_timing
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.tracing.processor import COLUMNS

__all__ = ["MODELS", "NEEDLE_PHRASE", "TENANTS", "TOOLS", "SeededRuns", "seed_runs"]

NEEDLE_PHRASE = "parcel held at customs in Reykjavik"
"""Words in the question of exactly one seeded run (:attr:`SeededRuns.needle`)."""

TENANTS: dict[str, tuple[str, ...]] = {
    "default": ("support", "triage"),
    "acme": ("acme-support", "acme-billing"),
    "globex": ("globex-research",),
}
"""Each tenant's agents (agent names are global: one owner each)."""

EXTERNAL_AGENT = "langgraph-helpdesk"
"""The agent name of the seeded external (OTLP) traces, sent by tenant ``acme``."""

MODELS: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-4o-mini": (Decimal("0.00000015"), Decimal("0.0000006")),
    "claude-3-5-haiku-latest": (Decimal("0.0000008"), Decimal("0.000004")),
    "llama-3.1-8b-instruct": (Decimal("0.00000005"), Decimal("0.00000008")),
    "gpt-4o": (Decimal("0.0000025"), Decimal("0.00001")),
}
"""Seeded models and their (input, output) USD prices per token."""

TOOLS: dict[str, Decimal] = {
    "orders_status": Decimal(0),
    "refunds_issue": Decimal("0.002"),
    "kb_search": Decimal(0),
    "tickets_create": Decimal("0.001"),
    "crm_lookup": Decimal("0.0005"),
}
"""Seeded tools and their per-call USD cost."""

# A version's model: version 3 of every agent moved to another model (a migration).
_VERSION_MODEL = {1: "gpt-4o-mini", 2: "gpt-4o-mini", 3: "claude-3-5-haiku-latest"}
_TOOL_OF_AGENT = {
    "support": ("orders_status", "kb_search"),
    "triage": ("tickets_create", "crm_lookup"),
    "acme-support": ("orders_status", "kb_search", "crm_lookup"),
    "acme-billing": ("refunds_issue", "crm_lookup"),
    "globex-research": ("kb_search",),
}
_CHILD = timedelta(microseconds=200)
"""A call starts this long after the step span around it (as in a real run)."""
_QUESTIONS = (
    "Where is my order {order}?",
    "Can I get a refund for order {order}?",
    "How do I reset my password?",
    "My invoice {order} shows the wrong amount",
    "Does the Pro plan include single sign-on?",
    "The app says sync conflict on {order}.docx",
    "How much storage is left on my account?",
    "Please cancel subscription {order}",
)
_ANSWERS = (
    "Order {order} shipped yesterday and arrives within 3 days.",
    "I have issued a refund for {order}; it appears within 5 working days.",
    "Use 'Forgot password' on the sign-in page; the link is valid for 1 hour.",
    "I opened ticket T-{order} for billing to correct the invoice.",
    "Yes: SAML single sign-on is part of the Pro and Enterprise plans.",
    "Keep both copies, then merge them from version history.",
)
_ERRORS = (
    ("tool", "step lookup failed after retries and re-planning: {tool} timed out after 10.0 s"),
    ("tool", "step lookup failed after retries and re-planning: {tool} answered HTTP 503"),
    ("budget", "budget exceeded: max_cost_usd 0.02 reached after step answer"),
    ("model", "step answer failed: the model's output did not match the schema (3 attempts)"),
    ("policy", "tool {tool} denied by policy: refunds above 100 USD need approval"),
)


@dataclass(frozen=True)
class Needle:
    """The one seeded run a test can find by filters alone, and its neighbours."""

    run_id: str
    tenant: str
    agent: str
    version: int
    session_id: str
    user_id: str
    session_runs: tuple[str, ...]
    """Every run of the needle's session, oldest first (the needle among them)."""


@dataclass(frozen=True)
class SeededRuns:
    """What :func:`seed_runs` wrote."""

    runs: int
    spans: int
    failed: int
    external: int
    first: datetime
    last: datetime
    needle: Needle
    by_tenant: dict[str, int] = field(default_factory=dict)
    external_run_ids: tuple[str, ...] = ()


_RUN_COLUMNS = (
    "id",
    "agent_name",
    "agent_version",
    "status",
    "inputs",
    "outputs",
    "decisions",
    "error",
    "principal",
    "forked_from",
    "steps_done",
    "tokens",
    "cost_usd",
    "created_at",
    "finished_at",
    "latency_ms",
    "latency_bucket",
    "session_id",
    "user_id",
)
_SPAN_COLUMNS = COLUMNS  # the span store's own column order
_JSON_RUN = {"inputs", "outputs", "decisions"}
_TIME_RUN = {"created_at", "finished_at"}
_JSON_SPAN = {"attributes"}
_TIME_SPAN = {"start_time", "end_time"}


class _Writer:
    """Batches of rows straight to the driver: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sqlite = store.is_sqlite

    def _encode(
        self, rows: Sequence[Sequence[Any]], columns: Sequence[str], js: set[str], ts: set[str]
    ) -> list[tuple[Any, ...]]:
        json_idx = [i for i, c in enumerate(columns) if c in js]
        time_idx = [i for i, c in enumerate(columns) if c in ts]
        out = []
        for row in rows:
            values = list(row)
            for i in json_idx:
                values[i] = json.dumps(values[i], separators=(",", ":"))
            if self.sqlite:
                for i in time_idx:
                    if values[i] is not None:
                        values[i] = values[i].replace(tzinfo=None).isoformat(" ", "microseconds")
            out.append(tuple(values))
        return out

    @contextmanager
    def text_index_in_bulk(self) -> Iterator[None]:
        """On SQLite, fill the explorer's free-text index once after the last batch (an
        FTS5 'rebuild' over every run) instead of by its insert trigger row by row: the
        same index, several times faster to build. The trigger is back on the way out,
        also when seeding fails."""
        from daytwo.store import run_text

        with self.store.session(write=True) as s:
            conn = s.connection()
            found = (
                self.sqlite
                and conn.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                    (f"{run_text.SQLITE_TABLE}_ai",),
                ).first()
            )
            if found:
                conn.exec_driver_sql(f"DROP TRIGGER {run_text.SQLITE_TABLE}_ai")
        try:
            yield
        finally:
            if found:
                with self.store.session(write=True) as s:
                    conn = s.connection()
                    conn.exec_driver_sql(run_text.SQLITE_REBUILD)
                    conn.exec_driver_sql(run_text.SQLITE_DDL[1])

    def write(self, runs: list[tuple[Any, ...]], spans: list[tuple[Any, ...]]) -> None:
        run_rows = self._encode(runs, _RUN_COLUMNS, _JSON_RUN, _TIME_RUN)
        span_rows = self._encode(spans, _SPAN_COLUMNS, _JSON_SPAN, _TIME_SPAN)
        with self.store.session(write=True) as s:
            conn = s.connection()
            if self.sqlite:
                for table, columns, rows in (
                    ("runtime_runs", _RUN_COLUMNS, run_rows),
                    ("trace_spans", _SPAN_COLUMNS, span_rows),
                ):
                    marks = ", ".join("?" for _ in columns)
                    conn.exec_driver_sql(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                    )
                return
            raw: Any = conn.connection.driver_connection
            with raw.cursor() as cur:
                for table, columns, rows in (
                    ("runtime_runs", _RUN_COLUMNS, run_rows),
                    ("trace_spans", _SPAN_COLUMNS, span_rows),
                ):
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for r in rows:
                            copy.write_row(r)


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _ms(rng: random.Random, median: float, spread: float = 0.6) -> float:
    """A latency with a long right tail (log-normal around ``median``)."""
    return round(rng.lognormvariate(0, spread) * median, 3)


@dataclass
class _Session:
    id: str
    user: str
    runs: list[str] = field(default_factory=list)


@dataclass
class _Tenant:
    name: str
    agents: tuple[str, ...]
    principals: tuple[str, ...]
    users: tuple[str, ...]
    open: list[_Session] = field(default_factory=list)


def _tenants(rng: random.Random) -> list[_Tenant]:
    out = []
    for name, agents in TENANTS.items():
        if name == "default":  # the CLI and the quickstart record no tenant prefix
            principals: tuple[str, ...] = ("operator:cli:alice", "operator:cli:bob")
        else:
            principals = tuple(f"{name}/key:{_hex(rng, 48)}" for _ in range(3))
        users = tuple(f"user{i:04d}@{name}.example" for i in range(400))
        out.append(_Tenant(name, agents, principals, users))
    return out


def _session(rng: random.Random, tenant: _Tenant) -> _Session:
    """A conversation: usually the next turn of an open one, else a new one."""
    if tenant.open and rng.random() < 0.6:
        return rng.choice(tenant.open)
    session = _Session(f"sess-{_hex(rng, 64)}", rng.choice(tenant.users))
    tenant.open.append(session)
    if len(tenant.open) > 25:
        tenant.open.pop(0)
    return session


class _Spans:
    """Builds span rows of one trace."""

    def __init__(self, rng: random.Random, trace_id: str) -> None:
        self.rng = rng
        self.trace_id = trace_id
        self.rows: list[tuple[Any, ...]] = []

    def add(
        self,
        name: str,
        start: datetime,
        ms: float,
        *,
        parent: str | None,
        kind: str = "internal",
        scope: str = "daytwo.runtime",
        error: str | None = None,
        attributes: dict[str, Any] | None = None,
        operation: str | None = None,
        model: str | None = None,
        run_id: str | None = None,
        session_id: str | None = None,
        agent: str | None = None,
        principal: str | None = None,
        tenant: str | None = None,
        tokens: tuple[int, int] | None = None,
        cost: Decimal | None = None,
    ) -> str:
        span_id = _hex(self.rng, 64)
        self.rows.append(
            (
                span_id,
                self.trace_id,
                parent,
                name,
                kind,
                scope,
                start,
                start + timedelta(milliseconds=ms),
                ms,
                "error" if error else "ok",
                error,
                attributes or {},
                operation,
                model,
                run_id,
                session_id,
                agent,
                principal,
                tenant,
                tokens[0] if tokens else None,
                tokens[1] if tokens else None,
                None if cost is None else str(cost),
                None if cost is None else "priced",
            )
        )
        return span_id


def _chat(
    spans: _Spans, parent: str, start: datetime, model: str, **extra: Any
) -> tuple[float, int, Decimal]:
    rng = spans.rng
    tin, tout = rng.randint(300, 2400), rng.randint(40, 400)
    price_in, price_out = MODELS[model]
    cost = tin * price_in + tout * price_out
    ms = _ms(rng, 900 if "mini" in model or "llama" in model else 1400)
    spans.add(
        f"chat {model}",
        start,
        ms,
        parent=parent,
        kind="client",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": tin,
            "gen_ai.usage.output_tokens": tout,
        },
        operation="chat",
        model=model,
        tokens=(tin, tout),
        cost=cost,
        **{"scope": "daytwo.models", **extra},
    )
    return ms, tin + tout, cost


def _runtime_run(
    rng: random.Random,
    tenant: _Tenant,
    run_id: str,
    created: datetime,
    question: str | None,
    force_failed: bool,
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], _Session]:
    agent = rng.choice(tenant.agents)
    version = rng.choices((1, 2, 3), weights=(2, 5, 3))[0]
    model = _VERSION_MODEL[version]
    principal = rng.choice(tenant.principals)
    session = _session(rng, tenant)
    order = f"A-{rng.randint(1000, 9999)}"
    if question is None:
        question = rng.choice(_QUESTIONS).format(order=order)
    roll = rng.random()
    status = (
        "failed"
        if force_failed or roll < 0.05
        else "cancelled"
        if roll < 0.06
        else "running"
        if roll < 0.065
        else "succeeded"
    )
    spans = _Spans(rng, _hex(rng, 128))
    agent_at = f"{agent}@{version}"
    root = spans.add(
        f"run {agent}",
        created,
        0,  # set below, once the steps are known
        parent=None,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "daytwo.run.id": run_id,
            "daytwo.agent.name": agent,
            "daytwo.agent.version": version,
            "daytwo.principal": principal,
        },
        operation="invoke_agent",
        run_id=run_id,
        agent=agent_at,
        principal=principal,
    )
    at = created + timedelta(milliseconds=rng.uniform(2, 20))
    tokens, cost, steps = 0, Decimal(0), 0
    error: str | None = None
    tools = _TOOL_OF_AGENT[agent]
    tool = rng.choice(tools)
    kind, template = rng.choice(_ERRORS) if status == "failed" else ("", "")
    # Step 1: a tool lookup (most agents), failing when the run failed on a tool.
    if rng.random() < 0.7 or kind in ("tool", "policy"):
        step = spans.add(
            "step lookup",
            at,
            0,
            parent=root,
            attributes={"daytwo.run.id": run_id, "daytwo.step.id": "lookup"},
            run_id=run_id,
        )
        tool_ms = _ms(rng, 120, 0.9)
        tool_error = template.format(tool=tool) if kind in ("tool", "policy") else None
        tool_cost = TOOLS[tool]
        spans.add(
            f"execute_tool {tool}",
            at + _CHILD,
            tool_ms,
            parent=step,
            scope="daytwo.gateway",
            error=tool_error,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                **({"daytwo.tool.cost_usd": str(tool_cost)} if tool_cost else {}),
            },
            operation="execute_tool",
            cost=tool_cost if tool_cost else None,
        )
        _finish_step(spans, tool_ms + 1.5, tool_error)
        at += timedelta(milliseconds=tool_ms + 2)
        cost += tool_cost
        steps += 1
        if tool_error:
            error = tool_error
    # Step 2: the answer (a model call), unless the run already failed or was cancelled.
    if error is None and status != "cancelled":
        step = spans.add(
            "step answer",
            at,
            0,
            parent=root,
            attributes={"daytwo.run.id": run_id, "daytwo.step.id": "answer"},
            run_id=run_id,
        )
        ms, used, call_cost = _chat(spans, step, at + _CHILD, model)
        model_error = template if kind in ("budget", "model") else None
        _finish_step(spans, ms + 1.0, model_error)
        at += timedelta(milliseconds=ms + 1.5)
        tokens, cost, steps = tokens + used, cost + call_cost, steps + 1
        error = model_error
    total_ms = (at - created) / timedelta(milliseconds=1) + rng.uniform(1, 8)
    _set_duration(spans, 0, total_ms, error)
    answer = rng.choice(_ANSWERS).format(order=order)
    run: tuple[Any, ...] = (
        run_id,
        agent,
        version,
        status,
        {"question": question, "order_id": order},
        {"answer": answer} if status == "succeeded" else {},
        [],
        error
        if status == "failed"
        else ("cancelled by operator" if status == "cancelled" else None),
        principal,
        None,
        steps,
        tokens,
        float(cost),
        *_timing(created, None if status == "running" else timedelta(milliseconds=total_ms)),
        session.id,
        session.user,
    )
    session.runs.append(run_id)
    return run, spans.rows, session


def _timing(created: datetime, took: timedelta | None) -> tuple[Any, ...]:
    """created_at, then the end columns as the runtime writes them (run_timing)."""
    end = run_timing(created, None if took is None else created + took)
    return created, end["finished_at"], end["latency_ms"], end["latency_bucket"]


def _finish_step(spans: _Spans, ms: float, error: str | None) -> None:
    """Give the last step span (the one before the call just added) its duration."""
    for i in range(len(spans.rows) - 1, -1, -1):
        if spans.rows[i][3].startswith("step "):
            _set_duration(spans, i, ms, error)
            return


def _set_duration(spans: _Spans, i: int, ms: float, error: str | None) -> None:
    row = list(spans.rows[i])
    row[7] = row[6] + timedelta(milliseconds=ms)
    row[8] = round(ms, 3)
    if error:
        row[9], row[10] = "error", error
    spans.rows[i] = tuple(row)


def _external_run(
    rng: random.Random, tenant: _Tenant, created: datetime
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """A trace an external agent sent over OTLP, as ingest stores it and lists it as a run."""
    trace_id = _hex(rng, 128)
    run_id = f"otlp-{trace_id}"
    principal = tenant.principals[0]
    session = _session(rng, tenant)
    question = rng.choice(_QUESTIONS).format(order=f"A-{rng.randint(1000, 9999)}")
    spans = _Spans(rng, trace_id)
    common: dict[str, Any] = {
        "run_id": run_id,
        "session_id": session.id,
        "principal": principal,
        "tenant": tenant.name,
        "scope": "openinference.instrumentation.langchain",
    }
    root = spans.add(
        "LangGraph",
        created,
        0,
        parent=None,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "service.name": EXTERNAL_AGENT,
            "input.value": question,
        },
        operation="invoke_agent",
        agent=EXTERNAL_AGENT,
        **common,
    )
    failed = rng.random() < 0.08
    at = created + timedelta(milliseconds=5)
    ms, used, cost = _chat(spans, root, at, "gpt-4o", **common)
    error = "upstream model error: HTTP 429 rate limited" if failed else None
    _set_duration(spans, 0, ms + rng.uniform(10, 60), error)
    answer = rng.choice(_ANSWERS).format(order="A-1001")
    total = spans.rows[0][8]
    run: tuple[Any, ...] = (
        run_id,
        EXTERNAL_AGENT,
        0,
        "failed" if failed else "succeeded",
        {"input": question},
        {} if failed else {"output": answer},
        [],
        error,
        principal,
        None,
        len(spans.rows),
        used,
        float(cost),
        *_timing(created, timedelta(milliseconds=total)),
        session.id,
        None,  # OTLP carries no end user the explorer trusts
    )
    session.runs.append(run_id)
    return run, spans.rows


def _agent_rows(store: Store, now: datetime) -> None:
    """Register each seeded agent's versions (and claim the tenant agents' names)."""
    import hashlib

    import sqlalchemy as sa

    from daytwo.store.tables.runtime import AgentVersion
    from daytwo.store.tables.server import Ownership

    with store.session(write=True) as s:
        for tenant, agents in TENANTS.items():
            for agent in agents:
                if s.scalar(sa.select(AgentVersion.id).where(AgentVersion.name == agent)):
                    continue
                for version in (1, 2, 3):
                    spec = {
                        "name": agent,
                        "description": f"seeded agent {agent} (version {version})",
                        "model": _VERSION_MODEL[version],
                        "tools": list(_TOOL_OF_AGENT[agent]),
                    }
                    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
                    s.add(
                        AgentVersion(
                            id=digest[:32],
                            name=agent,
                            version=version,
                            spec=spec,
                            spec_hash=digest,
                            source="seed_runs",
                            created_at=now - timedelta(days=60 - 10 * version),
                        )
                    )
                if tenant != "default":
                    s.merge(Ownership(kind="agent", name=agent, tenant=tenant, created_at=now))


def seed_runs(
    store: Store,
    n: int = 100_000,
    *,
    seed: int = 7,
    days: float = 30.0,
    now: datetime | None = None,
    external: int | None = None,
    batch: int = 5000,
) -> SeededRuns:
    """Insert ``n`` runs (``external`` of them OTLP traces, default ``n // 500``) with spans.

    Runs are spread evenly over ``[now - days, now)``, oldest first; tenants get about
    45% (``default``), 40% (``acme``) and 15% (``globex``) of them. The store must be
    migrated. Returns what was written, including the :class:`Needle` run.
    """
    if n < 10:
        raise ValueError("seed at least 10 runs (the needle's session needs neighbours)")
    rng = random.Random(seed)
    now = now or utcnow()
    now = now.astimezone(UTC)
    start = now - timedelta(days=days)
    step = timedelta(days=days) / n
    n_external = max(1, n // 500) if external is None else external
    external_at = set(rng.sample(range(n), n_external)) if n_external else set()
    tenants = _tenants(rng)
    acme = next(t for t in tenants if t.name == "acme")
    # The needle sits two thirds of the way along and opens a session that goes on after it.
    needle_at = (2 * n) // 3
    while needle_at in external_at:
        needle_at += 1
    _agent_rows(store, now)
    writer = _Writer(store)
    with writer.text_index_in_bulk():
        return _seed(
            store, writer, n, rng, start, step, external_at, tenants, acme, needle_at, batch
        )


def _seed(
    store: Store,
    writer: _Writer,
    n: int,
    rng: random.Random,
    start: datetime,
    step: timedelta,
    external_at: set[int],
    tenants: Any,
    acme: Any,
    needle_at: int,
    batch: int,
) -> SeededRuns:
    """The runs of :func:`seed_runs`, written by ``writer`` in batches of ``batch``."""
    n_external = len(external_at)
    needle_session: _Session | None = None
    needle_run = ""
    runs: list[tuple[Any, ...]] = []
    spans: list[tuple[Any, ...]] = []
    by_tenant: dict[str, int] = {t.name: 0 for t in tenants}
    failed = n_spans = 0
    external_ids: list[str] = []
    for i in range(n):
        created = start + step * i + timedelta(microseconds=rng.randint(0, 999))
        tenant = rng.choices(tenants, weights=(45, 40, 15))[0]
        if i in external_at:
            run, rows = _external_run(rng, acme, created)
            tenant = acme
            external_ids.append(run[0])
        elif i == needle_at:
            tenant = acme
            acme.open = []  # a fresh session for the needle
            run, rows, needle_session = _runtime_run(
                rng, acme, _hex(rng, 128), created, f"My {NEEDLE_PHRASE} for a week", True
            )
            needle_run = run[0]
            acme.open = [needle_session]  # the next acme runs continue it
        else:
            if needle_session is not None and tenant is acme and len(needle_session.runs) < 4:
                acme.open = [needle_session]
            run, rows, _ = _runtime_run(rng, tenant, _hex(rng, 128), created, None, False)
        by_tenant[tenant.name] += 1
        failed += run[3] == "failed"
        runs.append(run)
        spans.extend(rows)
        if len(runs) >= batch:
            writer.write(runs, spans)
            n_spans += len(spans)
            runs, spans = [], []
    if runs:
        writer.write(runs, spans)
        n_spans += len(spans)
    assert needle_session is not None
    agent, version = _needle_agent(store, needle_run)
    return SeededRuns(
        runs=n,
        spans=n_spans,
        failed=failed,
        external=n_external,
        first=start,
        last=start + step * (n - 1),
        needle=Needle(
            run_id=needle_run,
            tenant="acme",
            agent=agent,
            version=version,
            session_id=needle_session.id,
            user_id=needle_session.user,
            session_runs=tuple(needle_session.runs),
        ),
        by_tenant=by_tenant,
        external_run_ids=tuple(external_ids),
    )


def _needle_agent(store: Store, run_id: str) -> tuple[str, int]:
    import sqlalchemy as sa

    from daytwo.store.tables.runtime import RunRecord

    with store.session() as s:
        row = s.execute(
            sa.select(RunRecord.agent_name, RunRecord.agent_version).where(RunRecord.id == run_id)
        ).one()
    return str(row[0]), int(row[1])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m daytwo.testing.seed_runs DATABASE_URL [--runs N]``: seed a migrated store."""
    parser = argparse.ArgumentParser(
        prog="python -m daytwo.testing.seed_runs",
        description="Seed a daytwo store with runs, spans and costs (for tests and benches).",
    )
    parser.add_argument("database_url", help="SQLAlchemy URL of the store (migrated on the way)")
    parser.add_argument("--runs", type=int, default=100_000, help="number of runs (100000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (7)")
    args = parser.parse_args(argv)
    store = Store(args.database_url)
    store.upgrade()
    seeded = seed_runs(store, args.runs, seed=args.seed)
    print(
        json.dumps(
            {
                "runs": seeded.runs,
                "spans": seeded.spans,
                "failed": seeded.failed,
                "external": seeded.external,
                "needle": seeded.needle.run_id,
            }
        )
    )
    store.dispose()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
