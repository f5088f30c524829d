"""The OpenAI wire format of the model gateway: requests in, responses and errors out.

Requests are validated with Pydantic; a malformed one becomes an OpenAI-shaped
``400`` whose ``param`` names the field (``messages.0.role``), so the official
SDK raises its usual ``BadRequestError``. Responses are built as plain dicts and
serialised with orjson (the hot path of every call).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daytwo.exceptions import InputError
from daytwo.models.types import ChatResponse, Message, StreamChunk, ToolCall, Usage

__all__ = [
    "ChatRequest",
    "ChunkEvents",
    "EmbeddingsRequest",
    "chat_completion",
    "chunk_event",
    "finish_reason",
    "parse_body",
    "to_messages",
    "usage_dict",
]

M = TypeVar("M", bound=BaseModel)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(_Open):
    """A content part; only ``text`` parts are accepted."""

    type: str
    text: str | None = None


class FunctionCallIn(_Open):
    name: str
    arguments: str = ""


class ToolCallIn(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessageIn(_Open):
    """One message of a chat request."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class ChatRequest(_Open):
    """``POST /v1/chat/completions``; unknown fields are passed to the upstream as given."""

    model: str = Field(min_length=1)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    user: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    def output_budget(self) -> int | None:
        """``max_completion_tokens`` (the newer name) or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    def passthrough(self) -> dict[str, Any]:
        """Options the models layer does not name (``stop``, ``top_p``, ``tool_choice`` ...)."""
        extra = dict(self.model_extra or {})
        extra.pop("metadata", None)
        extra.pop("store", None)
        return extra


class EmbeddingsRequest(_Open):
    """``POST /v1/embeddings``."""

    model: str = Field(min_length=1)
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def texts(self) -> list[str]:
        """The inputs as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


def parse_body(raw: bytes, model: type[M]) -> M:
    """The request body as ``model``; InputError naming the field when it does not fit."""
    if not raw.strip():
        raise InputError("the request body is empty", hint="send a JSON object", param=None)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(
            f"the request body is not valid JSON: {exc}", hint="send a JSON object", param=None
        ) from exc
    if not isinstance(data, dict):
        raise InputError("the request body must be a JSON object", hint="send {...}", param=None)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        raise InputError(
            f"invalid value for {param!r}: {err['msg']}" if param else err["msg"],
            hint="see the OpenAI API reference for the request shape",
            param=param,
        ) from exc


def _text(content: str | list[ContentPart] | None, where: str) -> str | None:
    if content is None or isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise InputError(
                f"content part of type {part.type!r} is not supported; send text parts",
                hint="the gateway's models take text only",
                param=f"{where}.content.{i}.type",
            )
        texts.append(part.text)
    return "".join(texts)


def to_messages(messages: Sequence[ChatMessageIn]) -> list[Message]:
    """The request's messages as the models layer's (``developer`` is a system message)."""
    out = []
    for i, m in enumerate(messages):
        role = "system" if m.role == "developer" else m.role
        out.append(
            Message(
                role=role,
                content=_text(m.content, f"messages.{i}"),
                name=m.name,
                tool_call_id=m.tool_call_id,
                tool_calls=[
                    ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                    for c in m.tool_calls or []
                ],
            )
        )
    return out


_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def finish_reason(reason: str | None) -> str | None:
    """An OpenAI finish reason (Anthropic stop reasons mapped)."""
    if reason is None:
        return None
    return _FINISH.get(reason, reason)


def usage_dict(usage: Usage) -> dict[str, Any]:
    """OpenAI ``usage``."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_id() -> str:
    """A fresh ``chatcmpl-`` id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def chat_completion(response: ChatResponse, model: str, *, text: str | None = None) -> bytes:
    """The ``chat.completion`` body (``text`` replaces the response's, e.g. validated JSON)."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": response.text if text is None else text,
        "refusal": None,
    }
    if response.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in response.tool_calls
        ]
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "finish_reason": finish_reason(response.finish_reason) or "stop",
        "logprobs": {"content": response.logprobs} if response.logprobs else None,
    }
    body = {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage_dict(response.usage),
        "system_fingerprint": None,
    }
    return orjson.dumps(body)


def chunk_event(
    cid: str,
    created: int,
    model: str,
    *,
    chunk: StreamChunk | None = None,
    role: bool = False,
    usage: Usage | None = None,
) -> bytes:
    """One SSE ``data:`` event of a ``chat.completion.chunk``.

    With ``usage`` it is the final usage chunk (``choices`` empty), as OpenAI sends
    it when ``stream_options.include_usage`` is set.
    """
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
    }
    if usage is not None:
        body["choices"] = []
        body["usage"] = usage_dict(usage)
    else:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if chunk is not None and chunk.text:
            delta["content"] = chunk.text
        finish = finish_reason(chunk.finish_reason) if chunk is not None else None
        body["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return b"data: " + orjson.dumps(body) + b"\n\n"


DONE_EVENT = b"data: [DONE]\n\n"


class ChunkEvents:
    """The SSE events of one streamed completion, written batch by batch: the role on
    the first event, then the text and finish reason of each chunk; at the end the
    usage chunk (when ``include_usage``) and ``[DONE]``."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.cid, self.created = completion_id(), int(time.time())
        self.model = model
        self.include_usage = include_usage
        self._role = True

    def batch(self, chunks: Sequence[StreamChunk]) -> bytes:
        """The events of ``chunks`` (empty ones skipped, but the first carries the role)."""
        out = []
        for chunk in chunks:
            if not (chunk.text or chunk.finish_reason or self._role):
                continue
            out.append(
                chunk_event(self.cid, self.created, self.model, chunk=chunk, role=self._role)
            )
            self._role = False
        return b"".join(out)

    def end(self, usage: Usage | None) -> bytes:
        """The last events, ``usage`` being the stream's (zero when unknown)."""
        if not self.include_usage:
            return DONE_EVENT
        return chunk_event(self.cid, self.created, self.model, usage=usage or Usage()) + DONE_EVENT
