"""daytwo.sdk against a real daytwo server (uvicorn on loopback): init, observe, score."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import daytwo.sdk as dt
from daytwo.exceptions import InputError, NotFoundError
from daytwo.server import KeyStore, create_app
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.store.tables.runtime import RunRecord
from daytwo.store.tables.tracing import SpanRow

from .live import live_server


@pytest.fixture
def server(tmp_path: Path, store: Store) -> Iterator[tuple[str, str, str]]:
    """(url, acme operator key, globex operator key); the SDK exports to it."""
    settings = Settings(data_dir=tmp_path / "data", database_url=store.url)
    keys = KeyStore(store)
    acme = keys.create(role="operator", tenant="acme")[1]
    globex = keys.create(role="operator", tenant="globex")[1]
    with live_server(create_app(settings, store, with_runtime=False)) as url:
        dt.init(url, acme, service_name="sdk-test-agent")
        try:
            yield url, acme, globex
        finally:
            dt.shutdown()


def _spans(store: Store, trace_id: str) -> dict[str, SpanRow]:
    with store.session() as s:
        rows = s.scalars(sa.select(SpanRow).where(SpanRow.trace_id == trace_id))
        return {r.name: r for r in rows}


@dt.observe(kind="tool")
def lookup(order_id: str) -> dict[str, str]:
    return {"order_id": order_id, "status": "shipped"}


@dt.observe
async def summarize(status: dict[str, str]) -> str:
    await asyncio.sleep(0)
    return f"Order {status['order_id']} has {status['status']}."


@dt.observe("support-turn", session="sess-1", user="user-9")
def turn(question: str) -> str:
    status = lookup("A-1001")
    return asyncio.run(summarize(status))


def test_observe_exports_one_trace_with_io_session_and_user(
    server: tuple[str, str, str], store: Store
) -> None:
    with dt.observe("request") as obs:
        answer = turn("where is my order?")
        obs.set_output(answer)
    assert answer == "Order A-1001 has shipped."
    assert dt.flush()
    spans = _spans(store, obs.trace_id)
    assert set(spans) == {"request", "support-turn", "lookup", "summarize"}
    t, lk, sm = spans["support-turn"], spans["lookup"], spans["summarize"]
    assert lk.parent_span_id == t.span_id
    assert sm.parent_span_id == t.span_id
    assert t.parent_span_id == spans["request"].span_id
    assert t.attributes["input.value"] == '{"question": "where is my order?"}'
    assert t.attributes["output.value"] == "Order A-1001 has shipped."
    assert lk.operation == "execute_tool"
    # Session and user of the outer observe reach the nested spans.
    assert (lk.session_id, lk.attributes["user.id"]) == ("sess-1", "user-9")
    assert spans["request"].session_id is None
    assert {r.tenant for r in spans.values()} == {"acme"}
    with store.session() as s:
        run = s.get(RunRecord, f"otlp-{obs.trace_id}")
    assert run is not None
    assert (run.agent_name, run.status) == ("sdk-test-agent", "succeeded")
    assert run.outputs == {"output": "Order A-1001 has shipped."}


def test_exception_marks_the_span_failed(server: tuple[str, str, str], store: Store) -> None:
    with pytest.raises(RuntimeError), dt.observe("boom") as obs:
        raise RuntimeError("tool down")
    dt.flush()
    row = _spans(store, obs.trace_id)["boom"]
    assert row.status == "error"
    assert row.status_message == "RuntimeError: tool down"


def test_async_context_manager(server: tuple[str, str, str], store: Store) -> None:
    async def main() -> str:
        async with dt.observe("async-block", kind="agent") as obs:
            obs.set_input({"q": 1})
            await asyncio.sleep(0)
        return obs.trace_id

    tid = asyncio.run(main())
    dt.flush()
    row = _spans(store, tid)["async-block"]
    assert row.attributes["openinference.span.kind"] == "AGENT"
    assert row.attributes["input.value"] == '{"q": 1}'


def test_score_and_its_bad_input(server: tuple[str, str, str], store: Store) -> None:
    url, _, globex = server
    with dt.observe("scored") as obs:
        pass
    stored = dt.score(obs.trace_id, "user_feedback", 1, comment="helpful")
    assert stored["value"] == 1.0
    assert stored["comment"] == "helpful"
    label = dt.score(obs.trace_id, "category", "billing")
    assert label["value"] == "billing"
    assert dt.score(obs.trace_id, "thumbs_up", True)["value"] == 1.0
    with pytest.raises(NotFoundError, match="no trace"):
        dt.score("f" * 32, "user_feedback", 1)
    with pytest.raises(InputError, match="score name"):
        dt.score(obs.trace_id, "bad name!", 1)
    with pytest.raises(InputError):
        dt.score("not-a-trace", "user_feedback", 1)
    # Another tenant can neither score nor read this trace's scores.
    import httpx

    h = {"Authorization": f"Bearer {globex}"}
    r = httpx.post(
        f"{url}/api/v1/traces/{obs.trace_id}/scores", json={"name": "x", "value": 0}, headers=h
    )
    assert r.status_code == 404
    assert httpx.get(f"{url}/api/v1/traces/{obs.trace_id}/scores", headers=h).status_code == 404
    mine = httpx.get(
        f"{url}/api/v1/traces/{obs.trace_id}/scores",
        headers={"Authorization": f"Bearer {server[1]}"},
    ).json()
    assert [s["name"] for s in mine] == ["user_feedback", "category", "thumbs_up"]


def test_init_refuses_bad_arguments() -> None:
    with pytest.raises(InputError, match="http"):
        dt.init("127.0.0.1:8000", "dt_x")
    with pytest.raises(InputError, match="daytwo key"):
        dt.init("http://127.0.0.1:8000", "sk-openai")
    dt.shutdown()
    with pytest.raises(InputError, match="not initialised"):
        dt.score("a" * 32, "x", 1)


def test_http_client_sends_the_trace_context_through_the_openai_sdk() -> None:
    """dt.http_client() in the official openai SDK: each request carries traceparent."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import openai
    from opentelemetry.sdk.trace import TracerProvider

    seen: list[str | None] = []
    reply = {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.headers.get("traceparent"))
            body = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1",
            api_key="dt_x",
            http_client=dt.http_client(),
        )
        tracer = TracerProvider().get_tracer("t")
        with tracer.start_as_current_span("x") as span:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
            tid = f"{span.get_span_context().trace_id:032x}"
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
        client.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert seen[0] is not None
    assert seen[0].split("-")[1] == tid
    assert seen[1] is None
