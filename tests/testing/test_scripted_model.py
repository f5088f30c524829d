"""The scripted OpenAI-compatible server and the OpenAI-compatible provider against it."""

from __future__ import annotations

import json

import pytest

from daytwo.exceptions import InputError, RateLimited, TransportError
from daytwo.models import Message, OpenAICompatProvider
from daytwo.testing import Reply, ScriptedModelServer

USER = [Message(role="user", content="hello")]


def test_scripted_content_tool_calls_and_usage() -> None:
    script = [Reply(content="hi there"), Reply(tool_calls=[("lookup", {"sku": "A1"})])]
    with ScriptedModelServer(script) as server:
        provider = OpenAICompatProvider(server.base_url)
        first = provider.chat(USER, max_tokens=5)
        second = provider.chat(USER)
        provider.close()
    assert first.text == "hi there"
    assert first.usage.input_tokens > 0
    assert second.tool_calls[0].name == "lookup"
    assert json.loads(second.tool_calls[0].arguments) == {"sku": "A1"}
    assert server.requests[0]["max_tokens"] == 5


def test_retries_429_with_retry_after_then_succeeds() -> None:
    script = [Reply(status=429, retry_after=0.05), Reply(status=500), Reply(content="ok")]
    with ScriptedModelServer(script) as server:
        provider = OpenAICompatProvider(server.base_url, max_retries=3)
        assert provider.chat(USER).text == "ok"
    assert len(server.requests) == 3


def test_exhausted_retries_raise_transport_error() -> None:
    with ScriptedModelServer([Reply(status=429, retry_after=0.01)] * 3) as server:
        provider = OpenAICompatProvider(server.base_url, max_retries=2)
        with pytest.raises(RateLimited) as info:
            provider.chat(USER)
    assert info.value.retry_after == pytest.approx(0.01)


def test_client_errors_are_not_retried() -> None:
    with ScriptedModelServer([Reply(status=400, body='{"error": "bad"}')]) as server:
        provider = OpenAICompatProvider(server.base_url, max_retries=3)
        with pytest.raises(InputError, match="HTTP 400"):
            provider.chat(USER)
    assert len(server.requests) == 1


def test_malformed_json_content_is_returned_verbatim() -> None:
    with ScriptedModelServer([Reply(content='{"answer": 4')]) as server:
        assert OpenAICompatProvider(server.base_url).chat(USER).text == '{"answer": 4'


def test_slow_reply_times_out() -> None:
    with ScriptedModelServer([Reply(content="late", delay=1.0)] * 2) as server:
        provider = OpenAICompatProvider(server.base_url, timeout=0.2, max_retries=0)
        with pytest.raises(TransportError, match="timeout"):
            provider.chat(USER)


def test_streaming() -> None:
    with ScriptedModelServer([Reply(content="a streamed answer of some length")]) as server:
        chunks = list(OpenAICompatProvider(server.base_url).stream(USER))
    pieces = [c.text for c in chunks if c.text]
    assert "".join(pieces) == "a streamed answer of some length"
    assert len(pieces) > 1
    # The provider asks for the usage (stream_options.include_usage): the last chunk has it.
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.output_tokens > 0


def test_responder_and_embeddings() -> None:
    import httpx

    def responder(request: dict[str, object]) -> str:
        return f"echo {len(request['messages'])}"  # type: ignore[arg-type]

    with ScriptedModelServer(responder=responder) as server:
        assert OpenAICompatProvider(server.base_url).chat(USER).text == "echo 1"
        body = httpx.post(f"{server.base_url}/embeddings", json={"input": ["a b", "c"]}).json()
    assert len(body["data"]) == 2
    assert len(body["data"][0]["embedding"]) == 384


def test_unreachable_server() -> None:
    provider = OpenAICompatProvider("http://127.0.0.1:1/v1", max_retries=0)
    with pytest.raises(TransportError, match="cannot reach"):
        provider.chat(USER)
