"""An agent run keeps the initiating query's trace: DBOS queue worker, gateway over MCP and HTTP,
map steps in a thread pool, asyncio tasks.

The gateway the run calls reaches a second daytwo gateway over MCP (Streamable HTTP, a real
uvicorn server on loopback) and a plain HTTP service (a real server on loopback) that
continues the trace from the ``traceparent`` header it receives.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry import trace

from daytwo.gateway import CredentialVault, Gateway
from daytwo.gateway.mcp_server import mcp_asgi_app
from daytwo.gateway.samples import register_samples
from daytwo.runtime import CallableRetriever, Runtime, load_spec
from daytwo.runtime.adapters import GatewayTools, ModelLLM
from daytwo.store import Store
from daytwo.store.tables.tracing import SpanRow
from daytwo.testing import Reply, ScriptedModelServer, scripted_chat_model
from daytwo.tracing import TracingHandle
from daytwo.tracing.propagation import bind_context, extract_context

from ._loopback import loopback_server

tracer = trace.get_tracer("daytwo.test")


class _Uvicorn:
    """A real uvicorn server for an ASGI app on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class _RiskService(BaseHTTPRequestHandler):
    """A tool service that continues the caller's trace from its ``traceparent`` header."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])) or b"{}")
        ctx = extract_context(dict(self.headers.items()))
        with tracer.start_as_current_span("risk service", context=ctx):
            payload = json.dumps({"account": body["account"], "risk_score": 0.25}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def risk_service() -> Iterator[str]:
    with loopback_server(_RiskService, "/risk") as url:
        yield url


SPEC = {
    "name": "support",
    "model": "scripted",
    "steps": [
        {"id": "docs", "kind": "retrieve", "collection": "kb", "query": "{{ input.q }}"},
        {
            "id": "order",
            "kind": "tool",
            "tool": "order_status",
            "arguments": {"order_id": "A-1001"},
        },
        {
            "id": "risks",
            "kind": "map",
            "tool": "risk",
            "items": "input.accounts",
            "arguments": {"account": "{{ item }}"},
            "concurrency": 2,  # two pool threads, one call each
        },
        {"id": "answer", "kind": "llm", "prompt": "Q: {{ input.q }}", "after": ["docs", "order"]},
    ],
    "output": "answer",
}


def _remote_gateway(tmp_path: Path) -> tuple[Gateway, Store, str]:
    """A second daytwo gateway (its own store) whose catalog is served over MCP."""
    store = Store(f"sqlite:///{tmp_path / 'remote.db'}")
    store.upgrade()
    gw = Gateway(store)
    register_samples(gw)
    key = gw.create_agent("caller", ["orders_status_cached"])
    return gw, store, key


def _local_gateway(store: Store, mcp_url: str, key: str, risk_url: str) -> Gateway:
    vault = CredentialVault(store, b"k" * 32)
    vault.put("remote-gateway-key", key)
    gw = Gateway(store, vault=vault, ssrf_allow=["127.0.0.1"])
    common = {"version": "1.0.0", "input_schema": {"type": "object"}}
    gw.register(
        {
            **common,
            "name": "order_status",
            "capability": "orders.status",
            "backend": {
                "type": "mcp",
                "url": mcp_url,
                "tool": "orders_status_cached",
                "auth": {"type": "bearer", "secret": "remote-gateway-key"},
            },
        }
    )
    gw.register(
        {
            **common,
            "name": "risk",
            "capability": "risk.score",
            "backend": {"type": "http", "method": "POST", "url": risk_url},
        }
    )
    return gw


def _rows(store: Store, trace_id: str) -> list[SpanRow]:
    with store.session() as s:
        return list(s.scalars(sa.select(SpanRow).where(SpanRow.trace_id == trace_id)))


@pytest.mark.slow
def test_agent_run_on_a_worker_keeps_the_query_trace_through_mcp_and_http(
    sqlite_tracing: TracingHandle, sqlite_store: Store, tmp_path: Path, risk_service: str
) -> None:
    remote, remote_store, key = _remote_gateway(tmp_path)
    server = _Uvicorn(mcp_asgi_app(remote))
    local = _local_gateway(sqlite_store, server.url + "/mcp", key, risk_service)
    hits = [{"chunk_id": "c1", "text": "Orders ship in 2 days.", "score": 0.9}]
    from daytwo.runtime import Services

    try:
        with ScriptedModelServer([Reply(content="It ships in 2 days.")]) as model:
            services = Services(
                tools=GatewayTools(local, as_agent=False),
                retriever=CallableRetriever(lambda collection, query, k: hits),
                llm=ModelLLM(scripted_chat_model(model.base_url)),
            )
            rt = Runtime(sqlite_store, services, data_dir=tmp_path / "rt")
            rt.launch()
            try:
                rt.registry.register(load_spec(SPEC))
                with tracer.start_as_current_span("user query") as root:
                    # enqueue: a DBOS queue worker thread runs the workflow, not this thread.
                    run_id = rt.enqueue("support", {"q": "when?", "accounts": ["acme", "zeta"]})
                run = rt.wait(run_id, timeout_s=120)
            finally:
                rt.shutdown()
        assert run["status"] == "succeeded", run.get("error")
    finally:
        server.close()
        local.close()
        remote.close()
        remote_store.dispose()
    sqlite_tracing.flush()

    ctx = root.get_span_context()
    rows = _rows(sqlite_store, format(ctx.trace_id, "032x"))
    by_id = {r.span_id: r for r in rows}
    names = sorted(r.name for r in rows)

    def one(name: str) -> SpanRow:
        found = [r for r in rows if r.name == name]
        assert len(found) == 1, (name, names)
        return found[0]

    def parent(row: SpanRow) -> SpanRow:
        assert row.parent_span_id in by_id, (row.name, names)
        return by_id[row.parent_span_id]

    query = one("user query")
    run_span = one("run support")
    assert run_span.parent_span_id == query.span_id
    assert run_span.run_id == run_id
    steps = {r.attributes["daytwo.step.id"]: r for r in rows if r.name.startswith("step ")}
    assert set(steps) == {"docs", "order", "risks", "answer"}
    assert all(s.parent_span_id == run_span.span_id for s in steps.values())
    # the model layer's one span per call under its step (a callable retriever opens none:
    # the knowledge layer opens the retrieve spans)
    assert not [r for r in rows if r.parent_span_id == steps["docs"].span_id]
    chat = one("chat scripted")
    assert parent(chat).span_id == steps["answer"].span_id
    assert chat.input_tokens is not None
    # order: step span -> local gateway span -> (MCP over HTTP) -> remote gateway span
    gateway_spans = [r for r in rows if r.scope == "daytwo.gateway"]
    tool_name = "gen_ai.tool.name"
    local_order = [r for r in gateway_spans if r.attributes.get(tool_name) == "order_status"]
    remote_order = [
        r for r in gateway_spans if r.attributes.get(tool_name) == "orders_status_cached"
    ]
    assert len(local_order) == 1, names
    assert len(remote_order) == 1, names
    assert parent(local_order[0]).span_id == steps["order"].span_id
    # the remote gateway's span descends from the local one through the MCP SDK's
    # client and server spans only (MCP carries the context in the request's _meta)
    hops = []
    above = parent(remote_order[0])
    while above.span_id != local_order[0].span_id:
        hops.append(above)
        above = parent(above)
    assert {h.scope for h in hops} <= {"mcp-python-sdk"}, [(h.name, h.scope) for h in hops]
    # map step: each item's call (pool threads) -> gateway span -> HTTP -> the service's span
    risk_calls = [r for r in gateway_spans if r.attributes.get("gen_ai.tool.name") == "risk"]
    assert len(risk_calls) == 2, names
    assert all(r.parent_span_id == steps["risks"].span_id for r in risk_calls)
    services_spans = [r for r in rows if r.name == "risk service"]
    assert sorted(r.parent_span_id for r in services_spans) == sorted(r.span_id for r in risk_calls)
    # no daytwo span of the run leaked into another trace (the MCP SDK's
    # notifications/initialized carries no _meta: a root of its own)
    with sqlite_store.session() as s:
        strays = s.scalars(
            sa.select(SpanRow.name).where(
                SpanRow.trace_id != query.trace_id, SpanRow.scope.like("daytwo.%")
            )
        ).all()
    assert strays == []


def test_context_follows_thread_pools_and_asyncio_tasks(
    sqlite_tracing: TracingHandle, sqlite_store: Store
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> None:
        with tracer.start_as_current_span(f"pool item {i}"):
            pass

    async def task(i: int) -> None:
        await asyncio.sleep(0)
        with tracer.start_as_current_span(f"task {i}"):
            # a thread started from a task, with the task's context
            await asyncio.to_thread(bind_context(work), 100 + i)

    async def tasks() -> None:
        with tracer.start_as_current_span("async fan-out"):
            await asyncio.gather(*(asyncio.create_task(task(i)) for i in range(3)))

    with tracer.start_as_current_span("query") as root:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(bind_context(work), range(4)))
            pool.submit(lambda: tracer.start_span("unbound").end()).result()
        asyncio.run(tasks())
    sqlite_tracing.flush()

    ctx = root.get_span_context()
    rows = {r.name: r for r in _rows(sqlite_store, format(ctx.trace_id, "032x"))}
    root_id = format(ctx.span_id, "016x")
    for i in range(4):
        assert rows[f"pool item {i}"].parent_span_id == root_id
    assert rows["async fan-out"].parent_span_id == root_id
    for i in range(3):
        assert rows[f"task {i}"].parent_span_id == rows["async fan-out"].span_id
        assert rows[f"pool item {100 + i}"].parent_span_id == rows[f"task {i}"].span_id
    # a pool thread without bind_context starts a trace of its own (what the fix is for)
    assert "unbound" not in rows
