"""Providers bound to profiles: spans, feature checks, API keys, Anthropic over real HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from daytwo.exceptions import ConfigError, InputError, NotFoundError, RateLimited, TransportError
from daytwo.models import Message, ProfileRegistry, get_model
from daytwo.models.instrumented import ProfiledModel
from daytwo.models.openai_compat import OpenAICompatProvider
from daytwo.models.types import ChatResponse
from daytwo.testing import Reply, ScriptedModelServer

USER = [Message(role="user", content="hello")]
REG = ProfileRegistry.load()
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Find a SKU",
            "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
    }
]


def test_chat_span_has_genai_attributes(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    reply = Reply(content="hi", usage={"prompt_tokens": 11, "completion_tokens": 3})
    with ScriptedModelServer([reply]) as server:
        model = get_model("openai/gpt-4o-mini", registry=REG, base_url=server.base_url)
        out = model.chat(USER, temperature=0, seed=7, max_tokens=5)
        model.close()
    assert out.text == "hi"
    assert out.profile == "openai/gpt-4o-mini"
    assert server.requests[0]["seed"] == 7
    assert server.requests[0]["model"] == "gpt-4o-mini"
    (span,) = [s for s in spans.get_finished_spans() if s.name == "chat gpt-4o-mini"]
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["daytwo.model.profile"] == "openai/gpt-4o-mini"
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "daytwo.models"


def test_logprobs_are_requested_and_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    reply = Reply(content="Red", logprobs=[("Red", -0.1, [("Red", -0.1), ("Blue", -2.3)])])
    with ScriptedModelServer([reply]) as server:
        model = get_model("openai/gpt-4o-mini", registry=REG, base_url=server.base_url)
        out = model.chat(USER, logprobs=2)
    assert server.requests[0]["logprobs"] is True
    assert server.requests[0]["top_logprobs"] == 2
    assert out.logprobs is not None
    assert out.logprobs[0]["top_logprobs"][1] == {
        "token": "Blue",
        "logprob": -2.3,
        "bytes": [66, 108, 117, 101],
    }


def test_unsupported_features_fail_before_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    with ScriptedModelServer() as server:
        model = get_model("anthropic/claude-haiku-4-5", registry=REG, base_url=server.base_url[:-3])
        with pytest.raises(InputError, match="does not return logprobs"):
            model.chat(USER, logprobs=3)
        with pytest.raises(InputError, match="does not support tools"):
            get_model("local/smollm2-135m", registry=REG).chat(USER, tools=TOOLS)
    assert server.requests == []


def test_missing_api_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set") as info:
        get_model("openai/gpt-4o-mini", registry=REG)
    assert "export OPENAI_API_KEY" in str(info.value.hint)


def test_unknown_profile() -> None:
    with pytest.raises(NotFoundError, match="unknown model profile 'nope/x'"):
        get_model("nope/x", registry=REG)


def test_openai_compat_profile_without_key_and_streaming(spans: InMemorySpanExporter) -> None:
    with ScriptedModelServer([Reply(content="streamed pieces of text")]) as server:
        model = get_model("vllm/llama-3.1-8b-instruct", registry=REG, base_url=server.base_url)
        assert "".join(model.stream(USER, max_tokens=8)) == "streamed pieces of text"
    assert "authorization" not in {k.lower() for k in server.requests[0]}
    assert any(s.name.startswith("chat ") for s in spans.get_finished_spans())


def test_anthropic_official_sdk_against_scripted_messages_api(
    monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    script = [
        Reply(status=429, retry_after=0.05),
        Reply(status=529),
        Reply(content="Bonjour", usage={"prompt_tokens": 9, "completion_tokens": 2}),
        Reply(tool_calls=[("lookup", {"sku": "A1"})]),
        Reply(content="a streamed answer from claude"),
        Reply(content='{"a": 1}'),
    ]
    with ScriptedModelServer(script) as server:
        model = get_model("anthropic/claude-haiku-4-5", registry=REG, base_url=server.base_url[:-3])
        msgs = [
            Message(role="system", content="Answer in French."),
            Message(role="user", content="Hello"),
        ]
        out = model.chat(msgs, max_tokens=20, temperature=0)
        assert out.text == "Bonjour"
        assert out.usage.input_tokens == 9
        assert out.finish_reason == "end_turn"
        call = model.chat(USER, tools=TOOLS)
        assert call.tool_calls[0].name == "lookup"
        assert json.loads(call.tool_calls[0].arguments) == {"sku": "A1"}
        assert "".join(model.stream(USER)) == "a streamed answer from claude"
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
        fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        assert model.chat(USER, response_format=fmt).text == '{"a": 1}'
    assert server.requests[5]["output_config"] == {
        "format": {"type": "json_schema", "schema": schema}
    }
    first = server.requests[2]
    assert first["system"] == "Answer in French."
    assert first["messages"] == [{"role": "user", "content": "Hello"}]
    assert first["max_tokens"] == 20
    assert server.requests[3]["tools"][0]["input_schema"]["properties"] == {
        "sku": {"type": "string"}
    }
    names = [
        s.attributes["gen_ai.provider.name"]
        for s in spans.get_finished_spans()
        if s.attributes and "gen_ai.provider.name" in s.attributes
    ]
    assert "anthropic" in names


def test_anthropic_errors_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    with ScriptedModelServer(
        [Reply(status=429, retry_after=0.01)] * 2 + [Reply(status=400)]
    ) as server:
        model = get_model(
            "anthropic/claude-haiku-4-5", registry=REG, base_url=server.base_url[:-3], max_retries=1
        )
        with pytest.raises(RateLimited):
            model.chat(USER)
        with pytest.raises(InputError, match="HTTP 400"):
            model.chat(USER)
    assert len(server.requests) == 3
    dead = get_model(
        "anthropic/claude-haiku-4-5", registry=REG, base_url="http://127.0.0.1:1", max_retries=0
    )
    with pytest.raises(TransportError, match="cannot reach"):
        dead.chat(USER)


def test_anthropic_tool_round_trip_messages() -> None:
    from daytwo.models.anthropic_provider import to_anthropic_messages
    from daytwo.models.types import ToolCall

    system, msgs = to_anthropic_messages(
        [
            Message(role="system", content="s"),
            Message(role="user", content="find A1"),
            Message(
                role="assistant",
                tool_calls=[ToolCall(id="t1", name="lookup", arguments='{"sku": "A1"}')],
            ),
            Message(role="tool", tool_call_id="t1", content='{"price": 3}'),
        ]
    )
    assert system == "s"
    assert msgs[1]["content"][0] == {
        "type": "tool_use",
        "id": "t1",
        "name": "lookup",
        "input": {"sku": "A1"},
    }
    assert msgs[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "t1", "content": '{"price": 3}'}],
    }


async def _achat(model: ProfiledModel, **options: Any) -> ChatResponse:
    """``model.achat(USER)``, its session closed on the loop it ran on."""
    try:
        return await model.achat(USER, **options)
    finally:
        provider = model.provider
        assert isinstance(provider, OpenAICompatProvider)
        await provider.aclose()
        model.close()


def test_achat_answers_like_chat_with_one_span(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The awaited call retries transport errors (Retry-After honoured), answers the
    same ChatResponse and records the same chat span as the blocking one."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    script = [
        Reply(status=503),
        Reply(status=429, retry_after=0.01),
        Reply(content="hi", usage={"prompt_tokens": 11, "completion_tokens": 3}),
    ]
    with ScriptedModelServer(script) as server:
        model = get_model("openai/gpt-4o-mini", registry=REG, base_url=server.base_url)
        assert model.can_await
        out = asyncio.run(_achat(model, temperature=0, seed=7, max_tokens=5))
    assert len(server.requests) == 3
    assert server.requests[-1]["seed"] == 7
    assert (out.text, out.profile, out.usage.output_tokens) == ("hi", "openai/gpt-4o-mini", 3)
    (span,) = [s for s in spans.get_finished_spans() if s.name == "chat gpt-4o-mini"]
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert attrs["daytwo.model.budget.prompt_tokens"] > 0


def test_achat_errors_are_the_blocking_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ScriptedModelServer([Reply(status=400, body='{"error": "bad"}')]) as server:
        model = get_model("openai/gpt-4o-mini", registry=REG, base_url=server.base_url)
        with pytest.raises(InputError, match="refused the request"):
            asyncio.run(_achat(model))
    model = get_model(
        "openai/gpt-4o-mini", registry=REG, base_url="http://127.0.0.1:9", max_retries=0
    )
    with pytest.raises(TransportError, match="cannot reach"):
        asyncio.run(_achat(model))


def test_a_summarising_model_is_not_awaited(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its summariser would call a model (blocking) while fitting the window."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = get_model(
        "openai/gpt-4o-mini", registry=REG, base_url="http://x", budget_strategy="summarise"
    )
    assert not model.can_await
    with pytest.raises(ConfigError, match="event loop"):
        asyncio.run(model.achat(USER))
