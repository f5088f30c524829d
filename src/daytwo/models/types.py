"""Wire-independent chat types shared by every provider."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "ChatResponse",
    "LastBatch",
    "Message",
    "StreamChunk",
    "ToolCall",
    "Usage",
    "add_usage",
]


class ToolCall(BaseModel):
    """A tool call proposed by the model (arguments as the raw JSON text)."""

    id: str
    name: str
    arguments: str


class Message(BaseModel):
    """One chat message."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    rank: float | None = Field(
        default=None,
        description="Set on retrieved-context messages: the retrieval score. Budget strategy "
        "'drop_chunks' drops the lowest-ranked first. Never sent to the model.",
    )

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat-completions shape of this message."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        return out


class Usage(BaseModel):
    """Token usage as reported by the provider."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


class ChatResponse(BaseModel):
    """A completed chat call."""

    text: str | None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None
    latency_s: float = 0.0
    logprobs: list[dict[str, Any]] | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)
    profile: str | None = None


class StreamChunk(BaseModel):
    """One piece of a streamed completion: text, and on the last pieces the finish
    reason and (when the server reports it) the usage of the whole completion."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None


class LastBatch(list[StreamChunk]):
    """The last batch of a stream iterated in batches (possibly empty): the provider
    saw the end of the stream with these chunks, so nothing follows them. A relay
    can finish its answer with it, without waiting for the stream to wind down."""


def add_usage(a: Usage, b: Usage) -> Usage:
    """The sum of two usages."""
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cached_tokens=a.cached_tokens + b.cached_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
    )
