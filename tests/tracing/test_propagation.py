"""The trace context crosses threads, serialised step inputs and a loopback HTTP call."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry import trace

from daytwo.store import Store
from daytwo.store.tables.tracing import SpanRow
from daytwo.tracing import TracingHandle
from daytwo.tracing.propagation import (
    attached,
    bind_context,
    context_carrier,
    extract_context,
    inject_context,
)

from ._loopback import loopback_server

tracer = trace.get_tracer("daytwo.test")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ctx = extract_context(dict(self.headers.items()))
        with tracer.start_as_current_span("server handle", context=ctx):
            pass
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    with loopback_server(_Handler, "/") as url:
        yield url


def _spans(store: Store) -> dict[str, SpanRow]:
    with store.session() as s:
        return {r.name: r for r in s.scalars(sa.select(SpanRow))}


def test_context_crosses_threads_steps_and_http(
    sqlite_tracing: TracingHandle, sqlite_store: Store, server: str
) -> None:
    with tracer.start_as_current_span("query") as root:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(bind_context(lambda: tracer.start_span("in thread").end())).result()
            # A plain thread does not inherit the context ...
            pool.submit(lambda: tracer.start_span("orphan").end()).result()
            # ... but a serialised carrier (a DBOS step input) brings it back.
            carrier = context_carrier()
            assert "traceparent" in carrier

            def step(carrier: dict[str, str]) -> None:
                with attached(carrier), tracer.start_as_current_span("dbos step"):
                    pass

            pool.submit(step, carrier).result()
        response = httpx.get(server, headers=inject_context({}))
        assert response.status_code == 200
    sqlite_tracing.flush()
    spans = _spans(sqlite_store)
    trace_id = format(root.get_span_context().trace_id, "032x")
    root_id = format(root.get_span_context().span_id, "016x")
    for name in ("in thread", "dbos step", "server handle"):
        assert spans[name].trace_id == trace_id, name
        assert spans[name].parent_span_id == root_id, name
    assert spans["orphan"].trace_id != trace_id
    assert spans["orphan"].parent_span_id is None


def test_empty_carrier_and_headers_are_harmless(sqlite_tracing: TracingHandle) -> None:
    with attached({}):
        with tracer.start_as_current_span("alone") as span:
            assert span.get_span_context().is_valid
    assert not trace.get_current_span(extract_context({})).get_span_context().is_valid


def test_context_follows_asyncio_tasks(sqlite_tracing: TracingHandle, sqlite_store: Store) -> None:
    import asyncio

    async def child() -> None:
        await asyncio.sleep(0)
        with tracer.start_as_current_span("async child"):
            pass

    async def main() -> str:
        with tracer.start_as_current_span("async root") as root:
            await asyncio.gather(asyncio.create_task(child()), asyncio.create_task(child()))
            return format(root.get_span_context().span_id, "016x")

    root_id = asyncio.run(main())
    sqlite_tracing.flush()
    with sqlite_store.session() as s:
        parents = list(
            s.scalars(sa.select(SpanRow.parent_span_id).where(SpanRow.name == "async child"))
        )
    assert parents == [root_id, root_id]


_WORKER = """
import json, sys
from opentelemetry import trace
from daytwo.store import Store
from daytwo.tracing import setup_tracing
from daytwo.tracing.propagation import attached
store = Store(sys.argv[1])
handle = setup_tracing(store)
with attached(json.loads(sys.argv[2])):
    with trace.get_tracer("daytwo.worker").start_as_current_span("worker tool call"):
        pass
handle.shutdown()
store.dispose()
"""


@pytest.mark.slow
def test_worker_process_joins_the_initiating_trace(
    sqlite_tracing: TracingHandle, sqlite_store: Store
) -> None:
    import json
    import subprocess
    import sys

    with tracer.start_as_current_span("initiating query") as root:
        carrier = context_carrier()
        done = subprocess.run(
            [sys.executable, "-c", _WORKER, sqlite_store.url, json.dumps(carrier)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    spans = _spans(sqlite_store)
    assert spans["worker tool call"].trace_id == format(root.get_span_context().trace_id, "032x")
    assert spans["worker tool call"].parent_span_id == format(
        root.get_span_context().span_id, "016x"
    )
