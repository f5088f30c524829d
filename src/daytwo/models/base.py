"""The chat interface every model offers, and the wire-level provider interface below it.

A *provider* speaks one wire protocol (OpenAI chat completions, Anthropic
messages) and takes OpenAI-named options. A :class:`ChatModel` is a provider bound
to a :class:`~daytwo.models.profiles.Profile`: it checks features and the token
budget and emits the LLM-call span (see :mod:`daytwo.models.instrumented`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from daytwo.models.profiles import Profile
from daytwo.models.types import ChatResponse, Message, StreamChunk

__all__ = ["AsyncProvider", "ChatModel", "Provider"]


@runtime_checkable
class Provider(Protocol):
    """One wire protocol; ``options`` use OpenAI request names (max_tokens, tools, ...)."""

    def chat(self, messages: Sequence[Message], **options: Any) -> ChatResponse:
        """One completion."""
        ...

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[StreamChunk]:
        """One completion, piece by piece (the last pieces carry finish reason and usage)."""
        ...

    def close(self) -> None:
        """Free connections (and a local engine)."""
        ...


@runtime_checkable
class AsyncProvider(Protocol):
    """A provider that can also answer on the event loop (no worker thread per call)."""

    async def achat(self, messages: Sequence[Message], **options: Any) -> ChatResponse:
        """One completion, awaited."""
        ...

    def astream_batches(
        self, messages: Sequence[Message], **options: Any
    ) -> AsyncGenerator[list[StreamChunk], None]:
        """One completion, piece by piece, iterated on the event loop: each item holds
        the pieces that arrived together (so a relay forwards them in one write); the
        last item is a :class:`~daytwo.models.types.LastBatch` when the end of the
        stream arrived with it."""
        ...


@runtime_checkable
class ChatModel(Protocol):
    """A model bound to a profile: what agents, evals and the ladder call."""

    profile: Profile

    def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        logprobs: int | None = None,
        max_tokens: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ChatResponse:
        """One completion. ``logprobs`` is the number of top alternatives per token;
        ``extra`` holds further request options (stop, top_p, grammar, tool_choice...)."""
        ...

    def stream(
        self,
        messages: Sequence[Message],
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> Iterator[str]:
        """The text of one completion, piece by piece."""
        ...

    def close(self) -> None:
        """Free the provider."""
        ...
