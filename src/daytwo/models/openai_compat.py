"""Client for any OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama, llama.cpp).

Transport failures (timeouts, refused connections, 429, 5xx) are retried with
tenacity, honouring ``Retry-After``; they stay separate from what the model
said (validation is the structured-output layer's job).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import aiohttp
import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from daytwo.exceptions import InputError, ModelError, RateLimited, TransportError
from daytwo.models.types import ChatResponse, LastBatch, Message, StreamChunk, ToolCall, Usage

__all__ = ["OpenAICompatProvider", "SSEChunks", "parse_chat_completion", "parse_stream_chunk"]


R = TypeVar("R")
_JSON_HEADERS = {"Content-Type": "application/json"}
_BACKOFF = wait_random_exponential(multiplier=0.2, max=8.0)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return min(exc.retry_after, 60.0)
    return float(_BACKOFF(state))


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def transport_retrying(max_retries: int) -> Retrying:
    """The retry policy of every provider: transport errors only, ``Retry-After`` honoured."""
    return Retrying(
        retry=retry_if_exception_type(TransportError),
        stop=stop_after_attempt(max_retries + 1),
        wait=_wait,
        reraise=True,
    )


def async_transport_retrying(max_retries: int) -> AsyncRetrying:
    """:func:`transport_retrying` for coroutines (the wait does not block the loop)."""
    return AsyncRetrying(
        retry=retry_if_exception_type(TransportError),
        stop=stop_after_attempt(max_retries + 1),
        wait=_wait,
        reraise=True,
    )


class OpenAICompatProvider:
    """Chat completions over the OpenAI protocol with httpx."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "default",
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max_retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers = headers
        self._timeout = timeout
        self._client = client or httpx.Client(timeout=timeout, headers=headers)
        self._asession: tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession] | None = None
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout, sock_read=timeout
        )

    def close(self) -> None:
        """Close the HTTP clients (the async one if its loop still runs: waited for
        from another thread, scheduled from the loop's own)."""
        self._client.close()
        if self._asession is None:
            return
        loop, session = self._asession
        self._asession = None
        if loop.is_closed() or not loop.is_running():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(session.close())
        else:
            asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=10)

    def _payload(self, messages: Sequence[Message], **options: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_openai() for m in messages],
        }
        payload.update({k: v for k, v in options.items() if v is not None})
        return payload

    def _post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self._client.post(url, json=payload)
        except httpx.TransportError as exc:
            raise _transport_error(url, exc) from exc
        _check_status(
            response.status_code, response.headers.get("retry-after"), lambda: response.text, url
        )
        return response

    async def _apost(self, path: str, payload: dict[str, Any]) -> bytes:
        url = f"{self.base_url}{path}"
        try:
            async with self._session().post(
                url, data=orjson.dumps(payload), headers=_JSON_HEADERS
            ) as response:
                raw = await response.read()
        except TimeoutError as exc:
            raise TransportError(f"timeout calling {url}", hint="raise the timeout") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"cannot reach {url}: {exc}", hint="check that the model server is running"
            ) from exc
        _check_status(
            response.status,
            response.headers.get("retry-after"),
            lambda: raw.decode("utf-8", "replace"),
            url,
        )
        return raw

    def _session(self) -> aiohttp.ClientSession:
        """The kept-alive session of the running event loop (a pool belongs to one
        loop: a new loop, as in tests that start several, gets a new session).

        aiohttp rather than ``httpx.AsyncClient``: a third of the CPU per call, which
        is most of what the gateway adds to a call."""
        loop = asyncio.get_running_loop()
        if self._asession is None or self._asession[0] is not loop:
            session = aiohttp.ClientSession(
                headers=self._headers, timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
            self._asession = (loop, session)
        return self._asession[1]

    async def aclose(self) -> None:
        """Close the event loop's session (call it on that loop)."""
        if self._asession is not None:
            session, self._asession = self._asession[1], None
            await session.close()

    async def _aretry(self, fn: Callable[..., Awaitable[R]], *args: Any) -> R:
        """``await fn(*args)`` under :func:`async_transport_retrying`, the first attempt
        outside tenacity: building its policy costs more CPU than the rest of a call's
        client side, and almost every call succeeds at once. A transport failure hands
        over to the full policy, which counts that failure as its first attempt (same
        attempts, same waits)."""
        try:
            return await fn(*args)
        except TransportError as exc:
            if self.max_retries < 1:
                raise
            first: TransportError | None = exc
        attempts = async_transport_retrying(self.max_retries)

        async def attempt() -> R:
            nonlocal first
            if first is not None:
                failed, first = first, None
                raise failed
            return await fn(*args)

        return await attempts(attempt)

    def _retrying(self) -> Retrying:
        return transport_retrying(self.max_retries)

    def chat(self, messages: Sequence[Message], **options: Any) -> ChatResponse:
        """One chat completion; options are OpenAI request fields (max_tokens, tools, ...)."""
        payload = self._payload(messages, **options)
        started = time.perf_counter()
        response = self._retrying()(self._post, "/chat/completions", payload)
        latency = time.perf_counter() - started
        try:
            body = response.json()
        except json.JSONDecodeError as exc:
            raise ModelError(f"model server answered non-JSON: {response.text[:200]!r}") from exc
        return parse_chat_completion(body, latency)

    async def achat(self, messages: Sequence[Message], **options: Any) -> ChatResponse:
        """:meth:`chat` on the event loop (an async client, no worker thread)."""
        payload = self._payload(messages, **options)
        started = time.perf_counter()
        raw = await self._aretry(self._apost, "/chat/completions", payload)
        latency = time.perf_counter() - started
        try:
            body = orjson.loads(raw)
        except ValueError as exc:
            raise ModelError(f"model server answered non-JSON: {raw[:200]!r}") from exc
        return parse_chat_completion(body, latency)

    def _stream_payload(self, messages: Sequence[Message], options: dict[str, Any]) -> bytes:
        return orjson.dumps(
            self._payload(messages, stream=True, stream_options={"include_usage": True}, **options)
        )

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[StreamChunk]:
        """Stream one completion chunk by chunk (server-sent events).

        The server is asked for the usage of the whole completion
        (``stream_options.include_usage``); it arrives on the last chunk when the
        server supports it.
        """
        body = self._stream_payload(messages, options)
        url = f"{self.base_url}/chat/completions"
        try:
            with self._client.stream("POST", url, content=body, headers=_JSON_HEADERS) as response:
                if response.status_code >= 400:
                    response.read()
                    _check_status(
                        response.status_code,
                        response.headers.get("retry-after"),
                        lambda: response.text,
                        url,
                    )
                events = SSEChunks()
                for data in response.iter_bytes():
                    yield from events.feed(data)
        except httpx.TransportError as exc:
            raise _transport_error(url, exc) from exc

    async def astream_batches(
        self, messages: Sequence[Message], **options: Any
    ) -> AsyncGenerator[list[StreamChunk], None]:
        """:meth:`stream` on the event loop (the async client, no worker thread), the
        chunks that arrived together (one network read) as one list, so a relay can
        forward them in one write. It ends at ``data: [DONE]``, without waiting for the
        server to close the response: the chunks that came with it are a
        :class:`LastBatch` (empty when ``[DONE]`` came alone); the rest of the body is
        read after that batch was taken, so the connection is reused. Its timeout is
        per read (as the blocking client's), not for the whole stream."""
        body = self._stream_payload(messages, options)
        url = f"{self.base_url}/chat/completions"
        try:
            async with self._session().post(
                url, data=body, headers=_JSON_HEADERS, timeout=self._stream_timeout
            ) as response:
                if response.status >= 400:
                    raw = await response.read()
                    _check_status(
                        response.status,
                        response.headers.get("retry-after"),
                        lambda: raw.decode("utf-8", "replace"),
                        url,
                    )
                events = SSEChunks()
                async for data in response.content.iter_any():
                    batch = events.feed(data)
                    if events.done:
                        yield LastBatch(batch)
                        await _drain(response.content)
                        break
                    if batch:
                        yield batch
        except TimeoutError as exc:
            raise TransportError(f"timeout calling {url}", hint="raise the timeout") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"cannot reach {url}: {exc}", hint="check that the model server is running"
            ) from exc


_DRAIN_LIMIT = 65536
_DRAIN_SECONDS = 1.0


async def _drain(content: aiohttp.StreamReader) -> None:
    """Read what follows ``[DONE]`` (the end of a chunked body, as a rule): a response
    read to its end gives its connection back to the session's pool, one left unread
    closes it, and the next stream would pay a new connection (and TLS handshake).
    More than :data:`_DRAIN_LIMIT` bytes after it, or a body that does not end within
    :data:`_DRAIN_SECONDS`, is not a model server's answer: that connection is closed
    instead (the caller already has every chunk)."""
    left = _DRAIN_LIMIT
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            while left > 0 and (data := await content.readany()):
                left -= len(data)


class SSEChunks:
    """The ``chat.completion.chunk`` events of an SSE body, fed as it arrives.

    Lines other than ``data:`` are skipped; after ``data: [DONE]`` the rest is read
    and ignored (so the connection is reused)."""

    def __init__(self) -> None:
        self._buffer = b""
        self.done = False
        """Whether ``data: [DONE]`` was received."""

    def feed(self, data: bytes) -> list[StreamChunk]:
        """The chunks completed by ``data`` (a partial last line waits for the next)."""
        if self.done:
            return []
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        out: list[StreamChunk] = []
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                break
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise ModelError(f"model server streamed non-JSON: {payload[:200]!r}") from exc
            out.append(parse_stream_chunk(chunk))
        return out


def _transport_error(url: str, exc: httpx.TransportError) -> TransportError:
    if isinstance(exc, httpx.TimeoutException):
        return TransportError(f"timeout calling {url}", hint="raise the timeout")
    return TransportError(
        f"cannot reach {url}: {exc}", hint="check that the model server is running"
    )


def _check_status(status: int, retry_after: str | None, text: Callable[[], str], url: str) -> None:
    """Raise the error an HTTP status means (``text()``: the body, read only for one)."""
    if status == 429:
        raise RateLimited(f"rate limited by {url}", retry_after=_parse_retry_after(retry_after))
    if status >= 500:
        raise TransportError(f"{url} answered HTTP {status}")
    if status >= 400:
        raise InputError(
            f"{url} refused the request (HTTP {status}): {text()[:300]}",
            hint="check the model name, API key and request options",
        )


def _usage(raw: dict[str, Any]) -> Usage:
    details = raw.get("prompt_tokens_details") or {}
    out_details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        reasoning_tokens=int(out_details.get("reasoning_tokens") or 0),
    )


def parse_stream_chunk(chunk: dict[str, Any]) -> StreamChunk:
    """One ``chat.completion.chunk`` as a :class:`StreamChunk` (first choice only)."""
    text = ""
    finish = None
    choices = chunk.get("choices") or []
    if choices:
        choice = choices[0]
        text = (choice.get("delta") or {}).get("content") or ""
        finish = choice.get("finish_reason")
    usage_raw = chunk.get("usage")
    return StreamChunk(
        text=text,
        finish_reason=finish,
        usage=_usage(usage_raw) if usage_raw else None,
        model=chunk.get("model"),
    )


def parse_chat_completion(body: dict[str, Any], latency_s: float) -> ChatResponse:
    """Turn an OpenAI chat-completions body into a ChatResponse."""
    try:
        choice = body["choices"][0]
        message = choice.get("message") or {}
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelError(f"model server answered without choices: {str(body)[:200]}") from exc
    usage_raw = body.get("usage") or {}
    calls = [
        ToolCall(
            id=str(c.get("id", "")),
            name=str((c.get("function") or {}).get("name", "")),
            arguments=str((c.get("function") or {}).get("arguments", "")),
        )
        for c in message.get("tool_calls") or []
    ]
    logprobs = (choice.get("logprobs") or {}).get("content")
    return ChatResponse(
        text=message.get("content"),
        tool_calls=calls,
        usage=_usage(usage_raw),
        model=str(body.get("model", "")),
        finish_reason=choice.get("finish_reason"),
        latency_s=latency_s,
        logprobs=logprobs,
        raw=body,
    )
