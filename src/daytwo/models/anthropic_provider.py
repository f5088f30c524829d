"""Anthropic Messages API through the official ``anthropic`` SDK.

Options arrive with OpenAI names and are mapped: the system messages become
``system``, tool calls/results become ``tool_use``/``tool_result`` blocks, OpenAI
tool definitions become Anthropic ``tools``, ``response_format: json_schema``
becomes ``output_config.format`` (structured outputs). ``temperature`` and ``seed``
are not sent: the current Messages API (SDK 2.x) has no such parameters. The
SDK's own retries are off: the same tenacity policy as every provider retries
transport errors (timeouts, connection errors, 429 honouring ``retry-after``,
5xx, 529), kept apart from what the model said.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from daytwo.exceptions import InputError, RateLimited, TransportError
from daytwo.models.openai_compat import _parse_retry_after, transport_retrying
from daytwo.models.types import ChatResponse, Message, StreamChunk, ToolCall, Usage

__all__ = ["AnthropicProvider", "to_anthropic_messages"]


def to_anthropic_messages(
    messages: Sequence[Message],
) -> tuple[str | None, list[dict[str, Any]]]:
    """(system text, Anthropic messages) for chat messages."""
    system = [m.content or "" for m in messages if m.role == "system"]
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": m.content or "",
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        if m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = []
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            for call in m.tool_calls:
                try:
                    args = json.loads(call.arguments or "{}")
                except json.JSONDecodeError:
                    args = {"_raw": call.arguments}
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": args})
            out.append({"role": "assistant", "content": blocks})
            continue
        out.append({"role": m.role, "content": m.content or ""})
    return ("\n\n".join(system) if system else None), out


def _tools(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        fn = tool.get("function", tool)
        out.append(
            {
                "name": fn["name"],
                "description": fn.get("description", ""),
                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
            }
        )
    return out


def _usage(usage: Any) -> Usage:
    """Anthropic usage as ours: cache reads are part of the input tokens."""
    cached = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
    return Usage(
        input_tokens=int(usage.input_tokens) + cached,
        output_tokens=int(usage.output_tokens),
        cached_tokens=cached,
    )


class AnthropicProvider:
    """Chat over the Anthropic Messages API (official SDK)."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        default_max_tokens: int = 1024,
    ) -> None:
        import anthropic

        self.model = model
        self.max_retries = max_retries
        self.default_max_tokens = default_max_tokens
        # The SDK's own OpenTelemetry call span is off: the models layer opens the one
        # ``chat`` span of each call (a second one would be counted twice by the ledger).
        self._client = anthropic.Anthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            open_telemetry={"traces": False},
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _request(self, messages: Sequence[Message], options: dict[str, Any]) -> dict[str, Any]:
        system, msgs = to_anthropic_messages(messages)
        req: dict[str, Any] = {
            "model": self.model,
            "messages": msgs,
            "max_tokens": options.get("max_tokens") or self.default_max_tokens,
        }
        if system:
            req["system"] = system
        fmt = options.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            req["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        if options.get("tools"):
            req["tools"] = _tools(options["tools"])
        if options.get("stop"):
            req["stop_sequences"] = list(options["stop"])
        return req

    def _call(self, req: dict[str, Any]) -> Any:
        import anthropic

        try:
            return self._client.messages.create(**req)
        except anthropic.RateLimitError as exc:
            raise RateLimited(
                f"rate limited by Anthropic ({self.model})",
                retry_after=_parse_retry_after(exc.response.headers.get("retry-after")),
            ) from exc
        except anthropic.APITimeoutError as exc:
            raise TransportError(
                f"timeout calling Anthropic ({self.model})", hint="raise the timeout"
            ) from exc
        except anthropic.APIConnectionError as exc:
            raise TransportError(
                f"cannot reach Anthropic: {exc}", hint="check the base URL and network"
            ) from exc
        except anthropic.APIStatusError as exc:
            if exc.status_code >= 500:
                raise TransportError(f"Anthropic answered HTTP {exc.status_code}") from exc
            raise InputError(
                f"Anthropic refused the request (HTTP {exc.status_code}): {str(exc)[:300]}",
                hint="check the model name, API key and request options",
            ) from exc

    def chat(self, messages: Sequence[Message], **options: Any) -> ChatResponse:
        """One completion."""
        req = self._request(messages, options)
        started = time.perf_counter()
        msg = transport_retrying(self.max_retries)(self._call, req)
        latency = time.perf_counter() - started
        texts = [b.text for b in msg.content if b.type == "text"]
        calls = [
            ToolCall(id=b.id, name=b.name, arguments=json.dumps(b.input))
            for b in msg.content
            if b.type == "tool_use"
        ]
        return ChatResponse(
            text="".join(texts) if texts else None,
            tool_calls=calls,
            usage=_usage(msg.usage),
            model=msg.model,
            finish_reason=msg.stop_reason,
            latency_s=latency,
            raw=msg.model_dump(mode="json"),
        )

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[StreamChunk]:
        """One completion, piece by piece; the last chunk carries the usage."""
        import anthropic

        req = self._request(messages, options)
        try:
            with self._client.messages.stream(**req) as stream:
                for text in stream.text_stream:
                    yield StreamChunk(text=text)
                msg = stream.get_final_message()
        except anthropic.APIConnectionError as exc:
            raise TransportError(f"cannot reach Anthropic: {exc}") from exc
        except anthropic.APIStatusError as exc:
            if exc.status_code == 429:
                raise RateLimited(
                    "rate limited by Anthropic",
                    retry_after=_parse_retry_after(exc.response.headers.get("retry-after")),
                ) from exc
            raise TransportError(f"Anthropic answered HTTP {exc.status_code}") from exc
        yield StreamChunk(finish_reason=msg.stop_reason, usage=_usage(msg.usage), model=msg.model)
