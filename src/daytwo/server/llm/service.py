"""The model gateway's engine: who calls, which model a name means, and one call through it.

Every call goes through the models layer (:class:`~daytwo.models.ProfiledModel`):
the tokenizer-aware context check, the structured-output ladder for
``response_format: json_schema``, transport retries, a route's fallback chain
(:class:`~daytwo.models.fallback.FallbackModel`), and one ``chat`` span per model
call. The gateway adds what belongs to the server: the caller's key, tenant,
session and end user on that span (:func:`daytwo.tracing.attributed`), the
caller's W3C trace context as its parent, tenant routes, budgets and rate limits.

A call whose model has an async wire (OpenAI-compatible upstreams) is awaited on the
event loop, streamed or not; other work (blocking providers, the structured-output
ladder, Redis budget counters) runs in the thread pool. Either way it runs inside a
:class:`contextvars.Context` prepared once per request, so the span's parent and
attribution are the same wherever a call runs.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from opentelemetry import context as otel_context

from daytwo.exceptions import InputError, NotAuthenticated, NotFoundError
from daytwo.models.fallback import FallbackModel
from daytwo.models.instrumented import ProfiledModel, get_model
from daytwo.models.profiles import Profile, ProfileRegistry, load_profiles
from daytwo.models.structured import Ladder, generate
from daytwo.models.types import ChatResponse, Message, StreamChunk, Usage
from daytwo.server.auth import KeyStore, Principal
from daytwo.server.llm.limits import GatewayLimits
from daytwo.server.llm.routes_store import ModelRoutes
from daytwo.server.tenancy import principal_string
from daytwo.tracing import attributes as A
from daytwo.tracing.attribution import set_attribution
from daytwo.tracing.propagation import extract_context

if TYPE_CHECKING:
    from daytwo.server.llm.openai_wire import ChatRequest
    from daytwo.settings import Settings
    from daytwo.store import Store

__all__ = [
    "AsyncModelStream",
    "CallContext",
    "ChunkStream",
    "GatewayModel",
    "ModelGateway",
    "ModelStream",
    "StreamResult",
]

GatewayModel = ProfiledModel | FallbackModel
ModelStream = Generator[StreamChunk, None, None]
AsyncModelStream = AsyncGenerator[list[StreamChunk], None]
R = TypeVar("R")


class ChunkStream(Protocol):
    """The chunks of a started stream, those that arrived together as one list;
    ``aclose()`` ends it early (which records it)."""

    def __aiter__(self) -> AsyncIterator[list[StreamChunk]]: ...

    async def aclose(self) -> None: ...


@dataclass
class StreamResult:
    """The usage of a stream and the profile that answered, known once it ends."""

    usage: Usage | None = None
    profile: str | None = None


@dataclass
class CallContext:
    """One request's caller and the context its blocking work runs in."""

    principal: Principal
    context: contextvars.Context

    def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn`` in the request's context (in whatever thread calls this)."""
        return self.context.run(fn, *args)


class ModelGateway:
    """Names → models, keys → principals, and calls with budgets, for one server process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        registry: ProfileRegistry | None = None,
        keys: KeyStore | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry or load_profiles(settings)
        self.keys = keys or KeyStore(store)
        self.routes = ModelRoutes(store, self.registry)
        self.limits = GatewayLimits(store, settings)
        self._models: dict[str, ProfiledModel] = {}
        self._lock = threading.Lock()

    # -- callers ---------------------------------------------------------------------

    def authenticate(self, key: str | None) -> Principal:
        """The principal of a full API key.

        Verification is cached by :class:`KeyStore` itself, per process and keyed by a
        digest, and a revocation in this process drops it at once."""
        if not key:
            raise NotAuthenticated(
                "no API key given",
                hint="send `Authorization: Bearer dt_...` (create one with `daytwo keys create`)",
            )
        return self.keys.authenticate(key)

    def call_context(self, principal: Principal, headers: Mapping[str, str]) -> CallContext:
        """The context of one call: the caller's trace as parent, the caller on every span."""
        parent = extract_context(headers) if "traceparent" in headers else None
        attrs: dict[str, Any] = {
            A.PRINCIPAL: principal_string(principal),
            A.TENANT: principal.tenant,
            A.SESSION_ID: headers.get("x-daytwo-session"),
            A.USER_ID: headers.get("x-daytwo-user"),
        }

        def prepare() -> None:
            if parent is not None:
                otel_context.attach(parent)
            set_attribution(attrs)

        ctx = contextvars.copy_context()
        ctx.run(prepare)
        return CallContext(principal, ctx)

    # -- models ----------------------------------------------------------------------

    def _profiled(self, profile: Profile) -> ProfiledModel:
        model = self._models.get(profile.name)
        if model is None:
            with self._lock:
                model = self._models.get(profile.name)
                if model is None:
                    model = get_model(profile.name, self.settings, registry=self.registry)
                    self._models[profile.name] = model
        return model

    def chat_names(self, tenant: str) -> list[str]:
        """Model names a tenant may ask for: chat profiles and the tenant's routes."""
        profiles = [p.name for p in self.registry.all() if not p.features.embeddings]
        return profiles + self.routes.names(tenant)

    def embedding_names(self) -> list[str]:
        """Embedding profiles."""
        return [p.name for p in self.registry.all() if p.features.embeddings]

    def _not_found(self, name: str, names: list[str], what: str) -> NotFoundError:
        return NotFoundError(
            f"the {what} {name!r} does not exist or you do not have access to it",
            hint=f"available: {', '.join(names)}",
            param="model",
        )

    def chat_model(self, tenant: str, name: str) -> GatewayModel:
        """The model a name means for ``tenant``: a chat profile or one of its routes."""
        profile = self._profile(name)
        if profile is not None and not profile.features.embeddings:
            return self._profiled(profile)
        chain = self.routes.chain(tenant, name)
        if chain is None:
            raise self._not_found(name, self.chat_names(tenant), "model")
        models = [self._profiled(self.registry.get(n)) for n in chain]
        return models[0] if len(models) == 1 else FallbackModel(models, name=name)

    def embedding_profile(self, name: str) -> Profile:
        """The embedding profile ``name``."""
        profile = self._profile(name)
        if profile is None or not profile.features.embeddings:
            raise self._not_found(name, self.embedding_names(), "embedding model")
        return profile

    def _profile(self, name: str) -> Profile | None:
        try:
            return self.registry.get(name)
        except NotFoundError:
            return None

    # -- calls -----------------------------------------------------------------------

    def complete(self, call: CallContext, model: GatewayModel, req: ChatRequest) -> ChatResponse:
        """One non-streamed completion (blocking; run it in ``call``'s context)."""
        from daytwo.server.llm.openai_wire import to_messages

        messages = to_messages(req.messages)
        self.limits.check(call.principal)
        fmt = req.response_format or None
        if fmt and fmt.get("type") == "json_schema":
            response = self._structured(model, messages, fmt, req)
        else:
            response = model.chat(messages, **self._chat_options(req))
        self.limits.record(call.principal, response.usage, self._priced(response.profile))
        return response

    def can_await(self, model: GatewayModel, req: ChatRequest) -> bool:
        """Whether :meth:`acomplete` may answer ``req`` on the event loop: the model's
        wire is async, the structured-output ladder (blocking, several calls) is not
        asked for, and the budget counters are this process's memory (Redis ones
        would block the loop)."""
        fmt = req.response_format
        return (
            model.can_await and self.limits.local and not (fmt and fmt.get("type") == "json_schema")
        )

    async def acomplete(
        self, call: CallContext, model: GatewayModel, req: ChatRequest
    ) -> ChatResponse:
        """:meth:`complete` awaited on the event loop, when :meth:`can_await`; run it
        as a task in ``call``'s context (its span's parent and attribution)."""
        from daytwo.server.llm.openai_wire import to_messages

        messages = to_messages(req.messages)
        self.limits.check(call.principal)
        response = await model.achat(messages, **self._chat_options(req))
        self.limits.record(call.principal, response.usage, self._priced(response.profile))
        return response

    @staticmethod
    def _chat_options(req: ChatRequest) -> dict[str, Any]:
        return {
            "tools": req.tools,
            "response_format": req.response_format or None,
            "temperature": req.temperature,
            "seed": req.seed,
            "logprobs": (req.top_logprobs or 0) if req.logprobs else None,
            "max_tokens": req.output_budget(),
            "extra": req.passthrough(),
        }

    def _structured(
        self,
        model: GatewayModel,
        messages: list[Message],
        fmt: dict[str, Any],
        req: ChatRequest,
    ) -> ChatResponse:
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InputError(
                "response_format json_schema needs a JSON Schema object in json_schema.schema",
                hint='send {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}',
                param="response_format.json_schema.schema",
            )
        ladder = Ladder(
            max_tokens=req.output_budget() or 512,
            temperature=req.temperature if req.temperature is not None else 0.0,
            seed=req.seed,
        )
        result = generate(model, messages, schema, ladder)
        last = result.attempts[-1]
        return ChatResponse(
            text=json.dumps(result.value, ensure_ascii=False),
            usage=result.usage,
            model=last.model,
            finish_reason="stop",
            profile=next(
                (a.model for a in reversed(result.attempts) if a.model != "json-repair"),
                model.profile.name,
            ),
        )

    def stream(
        self, call: CallContext, model: GatewayModel, req: ChatRequest
    ) -> tuple[ModelStream, StreamResult]:
        """A streamed completion (blocking iterator; advance it in ``call``'s context)
        and where its final usage lands when it ends, however it ends."""
        result = StreamResult()
        return model.stream_chunks(**self._stream_options(call, req, result)), result

    def can_await_stream(self, model: GatewayModel) -> bool:
        """Whether :meth:`astream` may serve a stream on the event loop: the model's wire
        is async and the budget counters are this process's memory (see :meth:`can_await`)."""
        return model.can_await and self.limits.local

    def astream(
        self, call: CallContext, model: GatewayModel, req: ChatRequest
    ) -> tuple[AsyncModelStream, StreamResult]:
        """:meth:`stream` iterated on the event loop, when :meth:`can_await_stream`.
        Its first step (budget check, the ``chat`` span's start) must run in ``call``'s
        context; the budget and rate limits are checked here, before it."""
        result = StreamResult()
        return model.astream_batches(**self._stream_options(call, req, result)), result

    def _stream_options(
        self, call: CallContext, req: ChatRequest, result: StreamResult
    ) -> dict[str, Any]:
        """The stream's arguments, after the caller's limits are checked; the stream's
        end records its usage in ``result`` and the caller's budgets."""
        from daytwo.server.llm.openai_wire import to_messages

        messages = to_messages(req.messages)
        self.limits.check(call.principal)

        def on_usage(usage: Usage, profile: Profile) -> None:
            result.usage, result.profile = usage, profile.name
            self.limits.record(call.principal, usage, profile)

        return {
            "messages": messages,
            "response_format": req.response_format or None,
            "temperature": req.temperature,
            "seed": req.seed,
            "max_tokens": req.output_budget(),
            "extra": req.passthrough(),
            "on_usage": on_usage,
        }

    def _priced(self, profile_name: str | None) -> Profile | None:
        return self._profile(profile_name) if profile_name else None

    def close(self) -> None:
        """Close every model this gateway opened (stops a local engine)."""
        with self._lock:
            models, self._models = list(self._models.values()), {}
        for model in models:
            model.close()
