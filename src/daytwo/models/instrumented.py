"""A provider bound to a profile: feature checks, budget check, LLM-call span.

:func:`get_model` builds one from a profile name. Every ``chat`` call is checked
against the profile's context window *before* it is sent (see
:mod:`daytwo.models.budget`) and emits a ``chat {model}`` span on the
``daytwo.models`` tracer with the GenAI attributes of DEVELOPERS.md.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import (
    AsyncGenerator,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing, contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from daytwo.exceptions import ConfigError, InputError
from daytwo.models.base import AsyncProvider, Provider
from daytwo.models.budget import BudgetReport, BudgetStrategy, fit_to_budget
from daytwo.models.profiles import Profile, ProfileRegistry, load_profiles
from daytwo.models.tokens import count_text
from daytwo.models.types import ChatResponse, LastBatch, Message, StreamChunk, Usage
from daytwo.tracing.content import capture_messages

if TYPE_CHECKING:
    from daytwo.models.local import LocalModelSettings
    from daytwo.settings import Settings

__all__ = ["ProfiledModel", "get_model", "make_provider"]

_tracer = trace.get_tracer("daytwo.models")


class ProfiledModel:
    """A :class:`~daytwo.models.base.ChatModel`: provider + profile + budget + span."""

    def __init__(
        self,
        provider: Provider,
        profile: Profile,
        *,
        budget_strategy: BudgetStrategy = "error",
        summariser: ProfiledModel | None = None,
    ) -> None:
        self.provider = provider
        self.profile = profile
        self.budget_strategy: BudgetStrategy = budget_strategy
        self.summariser = summariser
        self.last_budget: BudgetReport | None = None
        self.async_provider: AsyncProvider | None = (
            provider if isinstance(provider, AsyncProvider) and summariser is None else None
        )
        """The provider when a call can be awaited on the event loop (:meth:`achat`:
        an async wire, and no summariser, which would call a model while fitting)."""

    def _options(
        self,
        tools: Sequence[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
        temperature: float | None,
        seed: int | None,
        logprobs: int | None,
        max_tokens: int | None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        f = self.profile.features
        name = self.profile.name
        if response_format and response_format.get("type") == "json_schema" and not f.json_schema:
            raise InputError(
                f"profile {name} does not support response_format json_schema",
                hint="use the structured-output ladder without the 'constrained' rung",
            )
        if tools and not f.tools:
            raise InputError(f"profile {name} does not support tools", hint="use another profile")
        if logprobs is not None and not f.logprobs:
            raise InputError(f"profile {name} does not return logprobs", hint="drop logprobs")
        options: dict[str, Any] = {
            "tools": list(tools) if tools else None,
            "response_format": response_format,
            "temperature": temperature,
            "seed": seed if f.seed else None,
            "max_tokens": max_tokens,
        }
        if logprobs is not None:
            options["logprobs"] = True
            options["top_logprobs"] = logprobs
        if extra:
            options.update({k: v for k, v in extra.items() if k not in options})
        return options

    def _span_attributes(self) -> dict[str, AttributeValue]:
        p = self.profile
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": p.provider,
            "gen_ai.request.model": p.model,
            "daytwo.model.profile": p.name,
        }

    @contextmanager
    def _span(self) -> Iterator[Span]:
        """The LLM-call span (``chat {model}``) with the request attributes every call has."""
        with _tracer.start_as_current_span(
            f"chat {self.profile.model}", kind=SpanKind.CLIENT, attributes=self._span_attributes()
        ) as span:
            yield span

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
        """One completion, budget-checked, feature-checked and traced.

        ``extra`` holds further OpenAI request options passed as given (``stop``,
        ``top_p``, ``tool_choice``, ...); the named arguments win over it.
        """
        options = self._options(
            tools, response_format, temperature, seed, logprobs, max_tokens, extra
        )
        with self._span() as span:
            self._request_attributes(span, temperature, max_tokens, seed)
            try:
                msgs = self._fit(span, messages, tools, max_tokens)
                response = self.provider.chat(msgs, **options)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            return self._answered(span, response)

    def _async_provider(self) -> AsyncProvider:
        provider = self.async_provider
        if provider is None:
            raise ConfigError(
                f"profile {self.profile.name}'s provider cannot answer on the event loop",
                hint="call chat() or stream_chunks() in a worker thread",
            )
        return provider

    @property
    def can_await(self) -> bool:
        """Whether :meth:`achat` may be used (see :attr:`async_provider`)."""
        return self.async_provider is not None

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
        """:meth:`chat` awaited on the event loop (same checks, same span); only for a
        model whose :attr:`async_provider` is set."""
        provider = self._async_provider()
        options = self._options(
            tools, response_format, temperature, seed, logprobs, max_tokens, extra
        )
        with self._span() as span:
            self._request_attributes(span, temperature, max_tokens, seed)
            try:
                msgs = self._fit(span, messages, tools, max_tokens)
                response = await provider.achat(msgs, **options)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            return self._answered(span, response)

    def _fit(
        self,
        span: Span,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        max_tokens: int | None,
    ) -> list[Message]:
        """The messages that fit the window (or :class:`ContextOverflow`), noted on the span."""
        msgs, report = fit_to_budget(
            messages,
            self.profile,
            tools=tools,
            max_tokens=max_tokens,
            strategy=self.budget_strategy,
            summariser=self.summariser,
        )
        self.last_budget = report
        span.set_attributes(
            {
                "daytwo.model.budget.prompt_tokens": report.prompt.tokens,
                "daytwo.model.budget.count": report.prompt.label,
            }
        )
        if report.dropped_messages or report.summarised_messages:
            span.set_attribute("daytwo.model.budget.strategy", report.strategy)
        capture_messages(span, "gen_ai.input.messages", msgs)
        return msgs

    def _answered(self, span: Span, response: ChatResponse) -> ChatResponse:
        """``response`` named by the profile, its model, output and usage on the span."""
        p = self.profile
        response.profile = p.name
        if p.provider == "local" or not response.model:
            # llama.cpp answers with the GGUF file path: the profile's model names it.
            response.model = p.model
        span.set_attribute("gen_ai.response.model", response.model)
        capture_messages(
            span,
            "gen_ai.output.messages",
            [{"role": "assistant", "content": response.text or ""}],
        )
        self._usage_attributes(span, response.usage)
        if response.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
        return response

    def stream(
        self,
        messages: Sequence[Message],
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> Iterator[str]:
        """Stream the text of one completion (see :meth:`stream_chunks`)."""
        for chunk in self.stream_chunks(
            messages, temperature=temperature, seed=seed, max_tokens=max_tokens
        ):
            if chunk.text:
                yield chunk.text

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
        """Stream one completion, budget-checked, as one ``chat`` span.

        The budget check runs at the first ``next()`` (a :class:`ContextOverflow`
        is raised before anything is sent). The span is started then, in the
        current context, and never made current, so the stream may be consumed
        from several threads in turn. Its usage is what the server reported, or
        else (a server without ``include_usage``, or a consumer that closed the
        stream early) the prompt count of the budget check and the tokens of the
        text actually received (``daytwo.model.usage.source`` says which).
        ``on_usage(usage, profile)`` is called with that usage when the stream ends,
        however it ends (for budgets).
        """
        call = _StreamCall(
            self, messages, response_format, temperature, seed, max_tokens, extra, on_usage
        )
        try:
            for chunk in self.provider.stream(call.messages, **call.options):
                call.add(chunk)
                yield chunk
        except GeneratorExit:
            call.cancelled()
            raise
        except Exception as exc:
            call.failed(exc)
            raise
        finally:
            call.end()

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
        """:meth:`stream_chunks` iterated on the event loop (same checks, same one span,
        same usage), the chunks that arrived together as one list; only for a model
        whose :attr:`async_provider` is set. A consumer that is cancelled or closes it
        early leaves the span of what was produced. With the provider's
        :class:`LastBatch`, the usage is settled (``on_usage`` called) before that batch
        is handed on, so a relay can answer in full at once; the span ends after."""
        provider = self._async_provider()
        call = _StreamCall(
            self, messages, response_format, temperature, seed, max_tokens, extra, on_usage
        )
        try:
            async with aclosing(provider.astream_batches(call.messages, **call.options)) as it:
                async for batch in it:
                    for chunk in batch:
                        call.add(chunk)
                    if isinstance(batch, LastBatch):
                        call.settle()
                    yield batch
        except (GeneratorExit, asyncio.CancelledError):
            call.cancelled()
            raise
        except Exception as exc:
            call.failed(exc)
            raise
        finally:
            call.end()

    @staticmethod
    def _request_attributes(
        span: Span, temperature: float | None, max_tokens: int | None, seed: int | None
    ) -> None:
        attrs: dict[str, float | int] = {}
        if temperature is not None:
            attrs["gen_ai.request.temperature"] = temperature
        if max_tokens is not None:
            attrs["gen_ai.request.max_tokens"] = max_tokens
        if seed is not None:
            attrs["gen_ai.request.seed"] = seed
        if attrs:
            span.set_attributes(attrs)

    @staticmethod
    def _usage_attributes(span: Span, usage: Usage) -> None:
        # One call (one lock acquisition in the SDK) for the four.
        span.set_attributes(
            {
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "gen_ai.usage.cache_read.input_tokens": usage.cached_tokens,
                "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
            }
        )

    def close(self) -> None:
        """Close the provider (stops a local engine)."""
        self.provider.close()


class _StreamCall:
    """One streamed call of a :class:`ProfiledModel`: the budget check, its ``chat``
    span, what was received, and at :meth:`end` the usage (the provider's, or the
    tokenizer's count of what was received) on the span and to ``on_usage``.
    Shared by the blocking and the async stream, so both record a call alike."""

    def __init__(
        self,
        model: ProfiledModel,
        messages: Sequence[Message],
        response_format: dict[str, Any] | None,
        temperature: float | None,
        seed: int | None,
        max_tokens: int | None,
        extra: Mapping[str, Any] | None,
        on_usage: Callable[[Usage, Profile], None] | None,
    ) -> None:
        self.options = model._options(
            None, response_format, temperature, seed, None, max_tokens, extra
        )
        p = self.profile = model.profile
        self.messages, report = fit_to_budget(
            messages,
            p,
            max_tokens=max_tokens,
            strategy=model.budget_strategy,
            summariser=model.summariser,
        )
        model.last_budget = report
        self.prompt_tokens = report.prompt.tokens
        self.on_usage = on_usage
        span = self.span = _tracer.start_span(
            f"chat {p.model}", kind=SpanKind.CLIENT, attributes=model._span_attributes()
        )
        model._request_attributes(span, temperature, max_tokens, seed)
        span.set_attributes(
            {"gen_ai.request.stream": True, "daytwo.model.budget.prompt_tokens": self.prompt_tokens}
        )
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.finish: str | None = None
        self.model: str | None = None
        self.settled: Usage | None = None
        self.source = "provider"

    def add(self, chunk: StreamChunk) -> None:
        """Note one received chunk."""
        if chunk.text:
            self.parts.append(chunk.text)
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason:
            self.finish = chunk.finish_reason
        if chunk.model:
            self.model = chunk.model

    def cancelled(self) -> None:
        """The consumer stopped before the end."""
        self.span.set_attribute("daytwo.model.stream.cancelled", True)

    def failed(self, exc: Exception) -> None:
        """The stream failed with ``exc``."""
        self.span.record_exception(exc)
        self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))

    def settle(self) -> Usage:
        """The call's usage (the provider's, or the tokenizer's count of the text
        received), handed to ``on_usage`` once: from here the call is counted."""
        usage = self.settled
        if usage is None:
            p, usage = self.profile, self.usage
            if usage is None or self.finish is None:
                self.source = "tokenizer"
                text = "".join(self.parts)
                out = count_text(text, p.tokenizer).tokens if text else 0
                usage = Usage(input_tokens=self.prompt_tokens, output_tokens=out)
            self.settled = usage
            if self.on_usage is not None:
                self.on_usage(usage, p)
        return usage

    def end(self) -> None:
        """End the span with the call's usage (settled now if it was not yet)."""
        usage = self.settle()
        p, span = self.profile, self.span
        served = p.model if p.provider == "local" or not self.model else self.model
        span.set_attributes(
            {"daytwo.model.usage.source": self.source, "gen_ai.response.model": served}
        )
        capture_messages(span, "gen_ai.input.messages", self.messages)
        text = "".join(self.parts)
        capture_messages(span, "gen_ai.output.messages", [{"role": "assistant", "content": text}])
        ProfiledModel._usage_attributes(span, usage)
        if self.finish:
            span.set_attribute("gen_ai.response.finish_reasons", [self.finish])
        span.end()


def _api_key(profile: Profile) -> str | None:
    if not profile.api_key_env:
        return None
    key = os.environ.get(profile.api_key_env)
    if not key:
        raise ConfigError(
            f"the API key for profile {profile.name} is missing: {profile.api_key_env} is not set",
            hint=f"export {profile.api_key_env}=<your key>",
        )
    return key


def make_provider(
    profile: Profile,
    *,
    base_url: str | None = None,
    local: LocalModelSettings | None = None,
    timeout: float = 120.0,
    max_retries: int = 3,
) -> Provider:
    """The wire-level provider for ``profile`` (``base_url`` overrides the profile's)."""
    if profile.provider == "local":
        from daytwo.models.local import LocalProvider

        return LocalProvider(local)
    url = base_url or profile.base_url
    if profile.provider == "anthropic":
        from daytwo.models.anthropic_provider import AnthropicProvider

        return AnthropicProvider(
            model=profile.model,
            api_key=_api_key(profile) or "",
            base_url=url,
            timeout=timeout,
            max_retries=max_retries,
            default_max_tokens=min(1024, profile.max_output_tokens),
        )
    from daytwo.models.openai_compat import OpenAICompatProvider

    if not url:
        raise ConfigError(
            f"profile {profile.name} has no base_url", hint="set base_url in its profile"
        )
    return OpenAICompatProvider(
        url,
        model=profile.model,
        api_key=_api_key(profile),
        timeout=timeout,
        max_retries=max_retries,
    )


def get_model(
    profile_name: str,
    settings: Settings | None = None,
    *,
    registry: ProfileRegistry | None = None,
    base_url: str | None = None,
    local: LocalModelSettings | None = None,
    budget_strategy: BudgetStrategy = "error",
    timeout: float = 120.0,
    max_retries: int = 3,
) -> ProfiledModel:
    """A chat model for the profile ``profile_name`` (NotFoundError names close profiles)."""
    reg = registry or load_profiles(settings)
    profile = reg.get(profile_name)
    if local is None and settings is not None and profile.provider == "local":
        from daytwo.models.local import LocalModelSettings

        local = LocalModelSettings(
            model_path=settings.local_model_path,
            n_ctx=settings.local_model_ctx,
            threads=settings.local_model_threads,
        )
    if profile.provider == "local" and profile.engine_options:
        from daytwo.models.local import LocalModelSettings, with_engine_options

        local = with_engine_options(local or LocalModelSettings(), profile.engine_options)
    if profile.provider == "local" and local is not None and local.n_ctx != profile.context_window:
        profile = profile.model_copy(update={"context_window": local.n_ctx})
    provider = make_provider(
        profile, base_url=base_url, local=local, timeout=timeout, max_retries=max_retries
    )
    summariser = None
    if budget_strategy == "summarise":
        summariser = ProfiledModel(provider, profile, budget_strategy="truncate_oldest")
    return ProfiledModel(provider, profile, budget_strategy=budget_strategy, summariser=summariser)
