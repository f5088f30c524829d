"""Interop: spans exported over OTLP/HTTP reach a real receiver on loopback and read back.

The receiver is OtelTap (PyPI ``oteltap``, a native OTLP http/protobuf receiver, in the
``dev`` extra). Arize Phoenix was the first choice, but installing it would upgrade
openai, anthropic and tenacity under the rest of daytwo.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import sqlalchemy as sa
from opentelemetry import trace

from daytwo.store import Store
from daytwo.store.tables.tracing import SpanRow
from daytwo.tracing import record_decision, setup_tracing

oteltap = pytest.importorskip("oteltap", reason="oteltap is in the dev extra")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_spans_reach_a_real_otlp_receiver(sqlite_store: Store) -> None:
    port = _free_port()

    async def scenario() -> tuple[object, object]:
        settings = oteltap.OtelTapHttpProtobufReceiverSettings(http_port=port)
        async with oteltap.OtelTapHttpProtobufReceiver(settings) as receiver:
            handle = setup_tracing(sqlite_store, otlp_endpoint=f"http://127.0.0.1:{port}")
            try:
                tracer = trace.get_tracer("daytwo.models")
                with tracer.start_as_current_span(
                    "invoke_agent a", attributes={"daytwo.run.id": "r"}
                ):
                    with tracer.start_as_current_span("chat m1") as span:
                        span.set_attributes(
                            {
                                "gen_ai.operation.name": "chat",
                                "gen_ai.request.model": "m1",
                                "gen_ai.usage.input_tokens": 12,
                            }
                        )
                        record_decision("tool_choice", "Picked m1.", {"why": "cheapest"})
                # OtelTap hands a span only to waiters registered before it arrives.
                waiters = [
                    asyncio.ensure_future(
                        receiver.await_trace(lambda s, n=n: s.name == n, timeout=30)
                    )
                    for n in ("chat m1", "invoke_agent a")
                ]
                await asyncio.sleep(0)
                assert await asyncio.to_thread(handle.flush)
                chat, root = await asyncio.gather(*waiters)
            finally:
                handle.shutdown()
        return chat, root

    chat, root = asyncio.run(scenario())
    attrs = {kv.key: kv.value for kv in chat.attributes}  # type: ignore[attr-defined]
    assert attrs["gen_ai.request.model"].string_value == "m1"
    assert attrs["gen_ai.usage.input_tokens"].int_value == 12
    assert [e.name for e in chat.events] == ["daytwo.decision"]  # type: ignore[attr-defined]
    assert chat.parent_span_id == root.span_id  # type: ignore[attr-defined]
    with sqlite_store.session() as s:
        row = s.scalars(sa.select(SpanRow).where(SpanRow.name == "chat m1")).one()
    assert chat.trace_id.hex() == row.trace_id  # type: ignore[attr-defined]
    assert chat.span_id.hex() == row.span_id  # type: ignore[attr-defined]
