"""A chat model that tries several models in order (a route's fallback chain).

Built by wrapping (like pydantic-ai's ``FallbackModel``): each member is a
:class:`~daytwo.models.instrumented.ProfiledModel`, so every attempt is its own
``chat`` span (a failed one has an error status and no usage). The next member is
tried when a call fails with a :class:`~daytwo.exceptions.ModelError` that the
member's own retries did not cure: transport errors, upstream rate limits, a
prompt that does not fit its window, a structured answer no rung could fix. A
caller's mistake (a ``UserError`` other than an overflow) is raised at once: the
next model would refuse it too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

from daytwo.exceptions import ContextOverflow, InputError, ModelError
from daytwo.models.instrumented import ProfiledModel
from daytwo.models.profiles import Profile
from daytwo.models.types import ChatResponse, Message, StreamChunk, Usage

__all__ = ["FallbackModel"]


def _falls_through(exc: BaseException) -> bool:
    return isinstance(exc, ModelError) and (
        isinstance(exc, ContextOverflow) or not isinstance(exc, InputError)
    )


class FallbackModel:
    """A :class:`~daytwo.models.base.ChatModel` over ``models``, tried in order."""

    def __init__(self, models: Sequence[ProfiledModel], *, name: str | None = None) -> None:
        if not models:
            raise InputError("a fallback chain needs at least one model", hint="name one or more")
        self.models = list(models)
        self.name = name or self.models[0].profile.name
        self.profile: Profile = self.models[0].profile
        """The first model's profile (what a caller plans against)."""

    @staticmethod
    def _give_up(errors: list[ModelError]) -> ModelError:
        # All overflowed: the first overflow names the window the caller aimed at.
        if all(isinstance(e, ContextOverflow) for e in errors):
            return errors[0]
        return errors[-1]

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
        """The first member's answer that does not fail with a model error."""
        errors: list[ModelError] = []
        for model in self.models:
            try:
                return model.chat(
                    messages,
                    tools=tools,
                    response_format=response_format,
                    temperature=temperature,
                    seed=seed,
                    logprobs=logprobs,
                    max_tokens=max_tokens,
                    extra=extra,
                )
            except ModelError as exc:
                if not _falls_through(exc):
                    raise
                errors.append(exc)
        raise self._give_up(errors)

    @property
    def can_await(self) -> bool:
        """Whether every member can answer on the event loop (:meth:`achat`)."""
        return all(m.async_provider is not None for m in self.models)

    async def achat(
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
        """:meth:`chat` awaited (every member must :attr:`can_await`)."""
        errors: list[ModelError] = []
        for model in self.models:
            try:
                return await model.achat(
                    messages,
                    tools=tools,
                    response_format=response_format,
                    temperature=temperature,
                    seed=seed,
                    logprobs=logprobs,
                    max_tokens=max_tokens,
                    extra=extra,
                )
            except ModelError as exc:
                if not _falls_through(exc):
                    raise
                errors.append(exc)
        raise self._give_up(errors)

    def stream_chunks(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
        extra: Mapping[str, Any] | None = None,
        on_usage: Callable[[Usage, Profile], None] | None = None,
    ) -> Generator[StreamChunk, None, None]:
        """Stream from the first member that starts streaming; once a chunk was
        received the stream is committed to that member."""
        errors: list[ModelError] = []
        for model in self.models:
            it = model.stream_chunks(
                messages,
                response_format=response_format,
                temperature=temperature,
                seed=seed,
                max_tokens=max_tokens,
                extra=extra,
                on_usage=on_usage,
            )
            try:
                first = next(it)
            except StopIteration:
                return
            except ModelError as exc:
                if not _falls_through(exc):
                    raise
                errors.append(exc)
                continue
            try:
                yield first
                yield from it
            finally:
                it.close()
            return
        raise self._give_up(errors)

    async def astream_batches(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
        extra: Mapping[str, Any] | None = None,
        on_usage: Callable[[Usage, Profile], None] | None = None,
    ) -> AsyncGenerator[list[StreamChunk], None]:
        """:meth:`stream_chunks` iterated on the event loop, in batches as
        :meth:`ProfiledModel.astream_batches` (every member must :attr:`can_await`)."""
        errors: list[ModelError] = []
        for model in self.models:
            it = model.astream_batches(
                messages,
                response_format=response_format,
                temperature=temperature,
                seed=seed,
                max_tokens=max_tokens,
                extra=extra,
                on_usage=on_usage,
            )
            try:
                first = await anext(it)
            except StopAsyncIteration:
                return
            except ModelError as exc:
                if not _falls_through(exc):
                    raise
                errors.append(exc)
                continue
            async with aclosing(it):
                yield first
                async for batch in it:
                    yield batch
            return
        raise self._give_up(errors)

    def stream(
        self,
        messages: Sequence[Message],
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> Iterator[str]:
        """The text of one completion, piece by piece."""
        for chunk in self.stream_chunks(
            messages, temperature=temperature, seed=seed, max_tokens=max_tokens
        ):
            if chunk.text:
                yield chunk.text

    def close(self) -> None:
        """Members are owned by whoever built them: nothing to free here."""
