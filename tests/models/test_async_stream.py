"""Streams iterated on the event loop: the same one ``chat`` span and usage as the
blocking stream, batches of what arrived together, fallbacks before the first chunk,
and a consumer that leaves (closing or cancelled) still leaves the call's span."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from daytwo.exceptions import InputError, ModelError, TransportError
from daytwo.models import Message, ProfileRegistry, get_model
from daytwo.models.fallback import FallbackModel
from daytwo.models.instrumented import ProfiledModel
from daytwo.models.openai_compat import OpenAICompatProvider, SSEChunks
from daytwo.models.profiles import Profile
from daytwo.models.tokens import get_tokenizer
from daytwo.models.types import LastBatch, StreamChunk, Usage
from daytwo.testing import Reply, ScriptedModelServer

USER = [Message(role="user", content="hello")]
REG = ProfileRegistry.load()
PROFILE = "vllm/llama-3.1-8b-instruct"


def model_at(url: str, profile: str = PROFILE) -> ProfiledModel:
    return get_model(profile, registry=REG, base_url=url, max_retries=0)


def run(models: list[ProfiledModel], main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """``main()`` on a fresh loop, the models' sessions closed on it."""

    async def wrapped() -> Any:
        try:
            return await main()
        finally:
            for m in models:
                assert isinstance(m.provider, OpenAICompatProvider)
                await m.provider.aclose()

    return asyncio.run(wrapped())


def chat_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]


def test_an_awaited_stream_is_the_blocking_one_in_batches(spans: InMemorySpanExporter) -> None:
    text = "one two three four five six seven eight"
    usages: list[tuple[Usage, Profile]] = []
    with ScriptedModelServer([Reply(content=text), Reply(content=text)]) as server:
        model = model_at(server.base_url)
        blocking = list(model.stream_chunks(USER, max_tokens=16))

        async def main() -> list[list[StreamChunk]]:
            it = model.astream_batches(
                USER, max_tokens=16, on_usage=lambda u, p: usages.append((u, p))
            )
            return [batch async for batch in it]

        batches = run([model], main)
    assert all(b for b in batches if not isinstance(b, LastBatch))  # no empty batch but the last
    assert isinstance(batches[-1], LastBatch)  # the upstream's [DONE] came with its last chunks
    chunks = [c for b in batches for c in b]
    assert "".join(c.text for c in chunks) == text
    assert [c.model_dump() for c in chunks] == [c.model_dump() for c in blocking]
    [usage] = [c.usage for c in chunks if c.usage]
    assert usages == [(usage, model.profile)]
    first, second = chat_spans(spans)
    assert second.attributes == first.attributes  # same attributes, same values
    attrs = dict(second.attributes or {})
    assert attrs["daytwo.model.usage.source"] == "provider"
    assert attrs["gen_ai.usage.output_tokens"] == usage.output_tokens
    assert attrs["gen_ai.request.stream"] is True


def test_the_last_batch_comes_with_the_usage_settled_and_the_span_still_open(
    spans: InMemorySpanExporter,
) -> None:
    """A relay can finish its answer with the last batch (the usage is counted and
    known), and the call's span ends after it, when the stream winds down."""
    usages: list[Usage] = []
    seen: list[tuple[bool, int, int]] = []
    with ScriptedModelServer([Reply(content="one two three")]) as server:
        model = model_at(server.base_url)

        async def main() -> None:
            it = model.astream_batches(USER, max_tokens=16, on_usage=lambda u, p: usages.append(u))
            async for batch in it:
                seen.append((isinstance(batch, LastBatch), len(usages), len(chat_spans(spans))))

        run([model], main)
    assert seen[-1] == (True, 1, 0)  # settled before it was handed on, span not yet ended
    assert all(n == 0 for last, n, _ in seen[:-1] if not last)  # not settled before the end
    assert len(usages) == 1
    assert len(chat_spans(spans)) == 1
    assert dict(chat_spans(spans)[0].attributes or {})["gen_ai.usage.output_tokens"] == (
        usages[0].output_tokens
    )


def test_streams_reuse_the_upstream_connection() -> None:
    """The rest of a stream's body after ``[DONE]`` is read, so the connection goes
    back to the pool: a second stream opens no new connection (nor TLS handshake)."""
    # The end of each body comes 20 ms after [DONE], in a read of its own.
    with ScriptedModelServer(default=Reply(content="one two three", chunk_delay=0.02)) as server:
        model = model_at(server.base_url)

        async def main() -> list[str]:
            texts = []
            for _ in range(3):
                chunks = [c async for b in model.astream_batches(USER) for c in b]
                texts.append("".join(c.text for c in chunks))
            return texts

        assert run([model], main) == ["one two three"] * 3
        assert server.connections == 1


def test_a_body_that_never_ends_after_done_does_not_hold_the_stream() -> None:
    """An upstream that sends ``[DONE]`` and then keeps the body open: the stream still
    ends (its span and usage recorded) within the drain's bound, not the read timeout."""
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
    event = b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(event), event)
        )
        await writer.drain()
        await asyncio.sleep(30)  # the terminating chunk never comes

    async def main() -> tuple[str, float]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        model = model_at(f"http://127.0.0.1:{port}/v1")
        try:
            started = time.monotonic()
            chunks = [c async for b in model.astream_batches(USER) for c in b]
            return "".join(c.text for c in chunks), time.monotonic() - started
        finally:
            assert isinstance(model.provider, OpenAICompatProvider)
            await model.provider.aclose()
            server.close()

    text, seconds = asyncio.run(main())
    assert text == "hi"
    assert seconds < 5


@pytest.mark.parametrize("how", ["aclose", "cancel"])
def test_a_consumer_that_leaves_mid_stream_leaves_one_span_of_what_it_received(
    spans: InMemorySpanExporter, how: str
) -> None:
    words = " ".join(f"w{i}" for i in range(100))
    usages: list[Usage] = []
    received: list[str] = []
    with ScriptedModelServer([Reply(content=words, chunk_delay=0.02)]) as server:
        model = model_at(server.base_url)

        async def consume() -> None:
            it = model.astream_batches(USER, on_usage=lambda u, p: usages.append(u))
            async for batch in it:
                received.extend(c.text for c in batch)
                if len(received) >= 3 and how == "aclose":
                    await it.aclose()
                    return
            raise AssertionError("the stream was read to its end")

        async def main() -> None:
            task = asyncio.create_task(consume())
            if how == "cancel":
                while len(received) < 3:
                    await asyncio.sleep(0.005)
                task.cancel()  # lands while the stream awaits the (slow) upstream
            with pytest.raises(asyncio.CancelledError) if how == "cancel" else _nothing():
                await task

        run([model], main)
    [span] = chat_spans(spans)
    attrs = dict(span.attributes or {})
    assert attrs["daytwo.model.stream.cancelled"] is True
    assert attrs["daytwo.model.usage.source"] == "tokenizer"
    tok = get_tokenizer(model.profile.tokenizer)
    assert attrs["gen_ai.usage.output_tokens"] == tok.count("".join(received))
    assert 0 < tok.count("".join(received)) < tok.count(words)
    assert [u.output_tokens for u in usages] == [attrs["gen_ai.usage.output_tokens"]]


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_errors_before_the_first_chunk_are_raised_from_the_first_step(
    spans: InMemorySpanExporter,
) -> None:
    with ScriptedModelServer([Reply(status=400, body='{"error": "bad model"}')]) as server:
        model = model_at(server.base_url)

        async def refused() -> None:
            await anext(model.astream_batches(USER))

        with pytest.raises(InputError, match="bad model"):
            run([model], refused)
    dead = model_at("http://127.0.0.1:9/v1")

    async def unreachable() -> None:
        await anext(dead.astream_batches(USER))

    with pytest.raises(TransportError, match="cannot reach"):
        run([dead], unreachable)
    assert [s.status.status_code.name for s in chat_spans(spans)] == ["ERROR", "ERROR"]


def test_a_fallback_stream_takes_the_first_member_that_starts(
    spans: InMemorySpanExporter,
) -> None:
    with ScriptedModelServer([Reply(content="from the second")]) as server:
        dead, live = model_at("http://127.0.0.1:9/v1"), model_at(server.base_url)
        chain = FallbackModel([dead, live])
        assert chain.can_await

        async def main() -> str:
            return "".join([c.text async for b in chain.astream_batches(USER) for c in b])

        assert run([dead, live], main) == "from the second"
    assert [s.status.status_code.name for s in chat_spans(spans)] == ["ERROR", "UNSET"]


def test_sse_chunks_are_cut_at_lines_whatever_the_reads() -> None:
    def event(text: str) -> bytes:
        body = {"model": "m", "choices": [{"index": 0, "delta": {"content": text}}]}
        return b"data: " + orjson.dumps(body) + b"\r\n\r\n"

    body = b": keep-alive\n\n" + event("a") + event("b") + b"data: [DONE]\n\n" + event("late")
    for cut in range(1, len(body)):
        events = SSEChunks()
        got = events.feed(body[:cut]) + events.feed(body[cut:])
        assert [c.text for c in got] == ["a", "b"]
        assert events.done
    with pytest.raises(ModelError, match="non-JSON"):
        SSEChunks().feed(b"data: {oops\n")
