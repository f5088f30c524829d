"""Client for any OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama, llama.cpp).

Transport failures (timeouts, refused connections, 429, 5xx) are retried with
tenacity, honouring ``Retry-After``; they stay separate from what the model
said (validation is the structured-output layer's job).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from daytwo.exceptions import InputError, ModelError, RateLimited, TransportError
from daytwo.models.types import ChatResponse, Message, StreamChunk, ToolCall, Usage

__all__ = ["OpenAICompatProvider", "parse_chat_completion", "parse_stream_chunk"]


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


def _raise_if_rate_limited(response: httpx.Response, url: str) -> None:
    if response.status_code == 429:
        raise RateLimited(
            f"rate limited by {url}",
            retry_after=_parse_retry_after(response.headers.get("retry-after")),
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
        self._client = client or httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

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
        except httpx.TimeoutException as exc:
            raise TransportError(f"timeout calling {url}", hint="raise the timeout") from exc
        except httpx.TransportError as exc:
            raise TransportError(
                f"cannot reach {url}: {exc}", hint="check that the model server is running"
            ) from exc
        _raise_if_rate_limited(response, url)
        if response.status_code >= 500:
            raise TransportError(f"{url} answered HTTP {response.status_code}")
        if response.status_code >= 400:
            detail = response.text[:300]
            raise InputError(
                f"{url} refused the request (HTTP {response.status_code}): {detail}",
                hint="check the model name, API key and request options",
            )
        return response

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

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[StreamChunk]:
        """Stream one completion chunk by chunk (server-sent events).

        The server is asked for the usage of the whole completion
        (``stream_options.include_usage``); it arrives on the last chunk when the
        server supports it.
        """
        payload = self._payload(
            messages, stream=True, stream_options={"include_usage": True}, **options
        )
        url = f"{self.base_url}/chat/completions"
        try:
            with self._client.stream("POST", url, json=payload) as response:
                _raise_if_rate_limited(response, url)
                if response.status_code >= 500:
                    raise TransportError(f"{url} answered HTTP {response.status_code}")
                if response.status_code >= 400:
                    response.read()
                    raise InputError(
                        f"{url} refused the request (HTTP {response.status_code}): "
                        f"{response.text[:300]}",
                        hint="check the model name, API key and request options",
                    )
                done = False
                for line in response.iter_lines():
                    if done or not line.startswith("data:"):
                        continue  # after [DONE]: read to the end, so the connection is reused
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        continue
                    try:
                        chunk = json.loads(data)
                    except json.JSONDecodeError as exc:
                        raise ModelError(f"model server streamed non-JSON: {data[:200]!r}") from exc
                    yield parse_stream_chunk(chunk)
        except httpx.TransportError as exc:
            raise TransportError(f"cannot reach {url}: {exc}") from exc


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
