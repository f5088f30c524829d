"""The Anthropic Messages wire format of the model gateway (``POST /v1/messages``).

A Messages request is mapped onto the gateway's chat request (system blocks
become a system message, ``tool_use``/``tool_result`` blocks become tool calls and
tool messages, tools become OpenAI function tools, ``output_config.format`` a
``json_schema`` response format), so it takes the same path through the models
layer. Answers and stream events are built in Anthropic's shapes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from daytwo.exceptions import InputError
from daytwo.models.types import ChatResponse, StreamChunk, Usage
from daytwo.server.llm.openai_wire import ChatRequest, parse_body

__all__ = ["MessageEvents", "MessagesRequest", "message", "parse", "to_chat_request"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Block(_Open):
    """A content block (``text``, ``tool_use``, ``tool_result``)."""

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None
    tool_use_id: str | None = None
    content: str | list[Block] | None = None


class MessageIn(_Open):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolIn(_Open):
    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class MessagesRequest(_Open):
    """``POST /v1/messages``."""

    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[MessageIn] = Field(min_length=1)
    system: str | list[Block] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop_sequences: list[str] | None = None
    stream: bool = False
    tools: list[ToolIn] | None = None
    output_config: dict[str, Any] | None = None


def parse(raw: bytes) -> MessagesRequest:
    """The request body; InputError naming the field when it does not fit."""
    return parse_body(raw, MessagesRequest)


def _block_text(blocks: str | list[Block] | None, where: str) -> str:
    if blocks is None or isinstance(blocks, str):
        return blocks or ""
    parts = []
    for i, block in enumerate(blocks):
        if block.type != "text" or block.text is None:
            raise InputError(
                f"a content block of type {block.type!r} is not supported here",
                hint="send text blocks",
                param=f"{where}.{i}.type",
            )
        parts.append(block.text)
    return "".join(parts)


def _messages(req: MessagesRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if req.system:
        out.append({"role": "system", "content": _block_text(req.system, "system")})
    for i, m in enumerate(req.messages):
        where = f"messages.{i}.content"
        if isinstance(m.content, str):
            out.append({"role": m.role, "content": m.content})
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for j, block in enumerate(m.content):
            if block.type == "text" and block.text is not None:
                texts.append(block.text)
            elif block.type == "tool_use" and m.role == "assistant" and block.id and block.name:
                arguments = orjson.dumps(block.input or {}).decode()
                calls.append(
                    {
                        "id": block.id,
                        "type": "function",
                        "function": {"name": block.name, "arguments": arguments},
                    }
                )
            elif block.type == "tool_result" and m.role == "user" and block.tool_use_id:
                content = _block_text(block.content, f"{where}.{j}.content")
                results.append(
                    {"role": "tool", "tool_call_id": block.tool_use_id, "content": content}
                )
            else:
                raise InputError(
                    f"a content block of type {block.type!r} is not supported in a "
                    f"{m.role} message",
                    hint="send text, tool_use (assistant) or tool_result (user) blocks",
                    param=f"{where}.{j}.type",
                )
        out.extend(results)
        if texts or calls or not results:
            msg: dict[str, Any] = {"role": m.role, "content": "".join(texts) or None}
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
    return out


def to_chat_request(req: MessagesRequest) -> ChatRequest:
    """The gateway's chat request for a Messages request."""
    body: dict[str, Any] = {
        "model": req.model,
        "messages": _messages(req),
        "max_tokens": req.max_tokens,
        "stream": req.stream,
    }
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop_sequences:
        body["stop"] = req.stop_sequences
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description or "",
                    "parameters": t.input_schema,
                },
            }
            for t in req.tools
        ]
    fmt = (req.output_config or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt.get("schema")},
        }
    return ChatRequest.model_validate(body)


_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def stop_reason(reason: str | None) -> str:
    """An Anthropic stop reason (OpenAI finish reasons mapped)."""
    if reason is None:
        return "end_turn"
    return _STOP.get(reason, reason)


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens - usage.cached_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def message(response: ChatResponse, model: str) -> bytes:
    """The Messages answer."""
    content: list[dict[str, Any]] = []
    if response.text:
        content.append({"type": "text", "text": response.text})
    for call in response.tool_calls:
        try:
            args = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            args = {"_raw": call.arguments}
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": args})
    body = {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if response.tool_calls else stop_reason(response.finish_reason),
        "stop_sequence": None,
        "usage": _usage(response.usage),
    }
    return orjson.dumps(body)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


class MessageEvents:
    """The Messages stream's events, written batch by batch: the message start and
    one text block with the first batch, its deltas, and at the end the block's stop,
    the stop reason with the usage, and the message stop."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._started = False
        self._finish: str | None = None

    def _start(self) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": f"msg_{uuid.uuid4().hex}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"message": message}) + _event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )

    def batch(self, chunks: Sequence[StreamChunk]) -> bytes:
        """The events of ``chunks`` (the start events with the first batch)."""
        out = [] if self._started else [self._start()]
        for chunk in chunks:
            if chunk.text:
                delta = {"type": "text_delta", "text": chunk.text}
                out.append(_event("content_block_delta", {"index": 0, "delta": delta}))
            self._finish = chunk.finish_reason or self._finish
        return b"".join(out)

    def end(self, usage: Usage | None) -> bytes:
        """The last events, ``usage`` being the stream's (zero when unknown)."""
        head = b"" if self._started else self._start()
        delta = {"stop_reason": stop_reason(self._finish), "stop_sequence": None}
        return (
            head
            + _event("content_block_stop", {"index": 0})
            + _event("message_delta", {"delta": delta, "usage": _usage(usage or Usage())})
            + _event("message_stop", {})
        )
