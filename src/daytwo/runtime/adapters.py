"""Bind the runtime's protocols to the real layers: gateway, knowledge, models, tracing.

Each adapter is small and imports its layer lazily, so the runtime works (with
fewer step kinds) while a layer is absent. :func:`default_services` builds the
set a worker or the CLI uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from daytwo._imports import import_attr
from daytwo.exceptions import InputError
from daytwo.runtime.protocols import AuditSink, LLMResult, ToolOutcome, call_deadline
from daytwo.runtime.steps import Services

if TYPE_CHECKING:
    from daytwo.gateway.gateway import Gateway
    from daytwo.gateway.telemetry import ToolStats
    from daytwo.knowledge.search import Hit
    from daytwo.knowledge.service import KnowledgeBase
    from daytwo.models.base import ChatModel
    from daytwo.models.prompts import PromptDefinition
    from daytwo.models.types import Usage
    from daytwo.settings import Settings
    from daytwo.store import Store
    from daytwo.tracing.pricing import Price

__all__ = [
    "GatewayTelemetry",
    "GatewayTools",
    "KnowledgeRetriever",
    "ModelLLM",
    "TracingAudit",
    "default_services",
    "load_services_factory",
]


class GatewayTools:
    """Tool calls through :class:`daytwo.gateway.Gateway` (auth, policies, idempotency)."""

    def __init__(self, gateway: Gateway, *, as_agent: bool = True) -> None:
        self.gateway = gateway
        self.as_agent = as_agent

    def tools(self, capability: str | None = None) -> list[str]:
        # Names only: every run's start checks its spec against them.
        return self.gateway.tool_names(capability)

    def call(
        self, tool: str, arguments: dict[str, Any], *, agent: str, idempotency_key: str
    ) -> ToolOutcome:
        result = self.gateway.call(
            tool,
            arguments,
            agent=agent if self.as_agent else None,
            idempotency_key=idempotency_key,
            deadline=call_deadline(),
        )
        return ToolOutcome(
            output=result.output,
            cost_usd=result.cost_usd,
            latency_ms=result.latency_ms,
            replayed=result.replayed,
            flags=tuple(result.flags),
            alerts=tuple(result.alerts),
        )


class GatewayTelemetry:
    """Live per-tool figures from the gateway's telemetry window."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def snapshot(self, tool: str) -> ToolStats:
        return self.gateway.telemetry.snapshot(tool)


class KnowledgeRetriever:
    """Search through :class:`daytwo.knowledge.KnowledgeBase` with the principal's ACL."""

    def __init__(self, kb: KnowledgeBase, *, groups: Sequence[str] = ()) -> None:
        self.kb = kb
        self.groups = tuple(groups)

    def search(
        self,
        collection: str,
        query: str,
        *,
        principal: str,
        k: int,
        mode: str,
        groups: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """``groups`` (an end user's, when a run acts on their behalf) replaces the default."""
        hits = self.kb.search(
            collection,
            query,
            principal or "anonymous",
            groups=tuple(groups) if groups is not None else self.groups,
            mode=mode,
            k=k,
        )
        return [_hit_dict(h) for h in hits]


def _hit_dict(hit: Hit) -> dict[str, Any]:
    return hit.to_dict()


class ModelLLM:
    """Chat through the models layer: a profiled model, structured output via its ladder."""

    def __init__(
        self,
        model: ChatModel | None = None,
        *,
        factory: Callable[[], ChatModel] | None = None,
        max_reasks: int = 1,
    ) -> None:
        self._model = model
        self._factory = factory
        self.max_reasks = max_reasks

    @property
    def model(self) -> ChatModel:
        """The profiled model (built on first use: a local model loads only when needed)."""
        if self._model is None:
            if self._factory is None:
                raise InputError("ModelLLM needs a model or a factory", hint="pass one")
            self._model = self._factory()
        return self._model

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        schema: dict[str, Any] | None,
        max_tokens: int,
    ) -> LLMResult:
        from daytwo.models.types import Message

        msgs = [Message(role=m["role"], content=m["content"]) for m in messages]  # type: ignore[arg-type]
        price = self.model.profile.price_at(datetime.now(UTC))
        if schema is not None:
            from daytwo.models.structured import Ladder, generate

            ladder = Ladder(max_tokens=max_tokens, max_reasks=self.max_reasks, seed=7)
            with self._charged(price):
                res = generate(self.model, msgs, schema, ladder=ladder)
            usage = res.usage
            text = ""
            data = res.value.model_dump() if hasattr(res.value, "model_dump") else res.value
        else:
            reply = self.model.chat(msgs, max_tokens=max_tokens, temperature=0.0, seed=7)
            usage = reply.usage
            text = reply.text or ""
            data = None
        return self._result(text, data, usage, price)

    def complete_prompt(self, definition: PromptDefinition, *, max_tokens: int) -> LLMResult:
        """Compile ``definition`` for this model's profile and answer it."""
        from daytwo.models.adapter import complete_definition
        from daytwo.models.structured import Ladder

        price = self.model.profile.price_at(datetime.now(UTC))
        ladder = Ladder(
            rungs=("repair", "bounded", "reask"),
            max_tokens=max_tokens,
            max_reasks=self.max_reasks,
            seed=7,
        )
        with self._charged(price):
            done = complete_definition(
                self.model, definition, max_tokens=max_tokens, seed=7, ladder=ladder
            )
        structured = definition.output_schema is not None
        return self._result(
            "" if structured else done.text, done.value if structured else None, done.usage, price
        )

    @staticmethod
    def _cost(usage: Usage, price: Price | None) -> float:
        # The ledger prices the call's span with the same Price.cost: the run's cost
        # (its budget meter) and the ledger's agree, cached and reasoning tokens included.
        if price is None:
            return 0.0
        return float(
            price.cost(
                usage.input_tokens, usage.output_tokens, usage.cached_tokens, usage.reasoning_tokens
            )
        )

    @contextlib.contextmanager
    def _charged(self, price: Price | None) -> Iterator[None]:
        """An error raised after the model answered (no rung of the repair ladder made the
        answer valid) carries the usage of those calls; add their cost and tokens to its
        context, so the step counts what the ledger counts (see ``Attempts.failed``)."""
        from daytwo.exceptions import DaytwoError
        from daytwo.models.types import Usage

        try:
            yield
        except DaytwoError as exc:
            usage = exc.context.get("usage")
            if isinstance(usage, Usage):
                exc.context["cost_usd"] = self._cost(usage, price)
                exc.context["tokens"] = usage.total_tokens
            raise

    def _result(self, text: str, data: Any, usage: Usage, price: Price | None) -> LLMResult:
        return LLMResult(
            text=text,
            data=data,
            usage=usage,
            cost_usd=self._cost(usage, price),
            model=self.model.profile.name,
        )


class TracingAudit:
    """Audit records in the tracing layer's hash-chained log."""

    def __init__(self, store: Store) -> None:
        from daytwo.tracing.audit import AuditLog

        self.log = AuditLog(store)

    def append(self, kind: str, actor: str, subject: str, data: dict[str, Any]) -> None:
        # Every runtime record's subject is the run id.
        self.log.append(kind=kind, actor=actor, subject=subject, data=data, run_id=subject)


def layer_services(
    settings: Settings,
    *,
    gateway: Gateway | None = None,
    kb: KnowledgeBase | None = None,
    audit: AuditSink | None = None,
    model_profile: str | None = None,
    with_llm: bool = True,
) -> Services:
    """Services over the given layer objects; the one place they are wired to the runtime.

    ``gateway`` gives tools and telemetry, ``kb`` retrieval, ``audit`` the audit sink
    (None: that service is absent); with ``with_llm`` model calls go through the
    models layer (``model_profile`` or ``settings.default_model``, and the profile an
    agent or a step names).
    """
    from daytwo.models import get_model

    services = Services(audit=audit)
    if gateway is not None:
        services.tools = GatewayTools(gateway)
        services.telemetry = GatewayTelemetry(gateway)
    if kb is not None:
        services.retriever = KnowledgeRetriever(kb)
    if with_llm:
        profile = model_profile or settings.default_model
        services.llm = ModelLLM(factory=lambda: get_model(profile, settings))
        services.llm_for = model_llms(settings, services.llm)
    return services


def default_services(
    settings: Settings,
    store: Store,
    *,
    model_profile: str | None = None,
    with_llm: bool = True,
) -> Services:
    """Services over new instances of the real layers (gateway, knowledge, models, audit)."""
    from daytwo.gateway import Gateway
    from daytwo.knowledge import KnowledgeBase

    return layer_services(
        settings,
        gateway=Gateway(store, settings),
        kb=KnowledgeBase(store, settings.data_dir, embedder=settings.embedder),
        audit=TracingAudit(store),
        model_profile=model_profile,
        with_llm=with_llm,
    )


def model_llms(settings: Settings, default: ModelLLM | None = None) -> Callable[[str], ModelLLM]:
    """Profile name → a ModelLLM on that profile (one per profile, built on first use).

    This is how an agent's or a step's ``model:`` is honoured. ``default`` answers for
    ``settings.default_model``, so the default profile loads once.
    """
    import threading

    from daytwo.models import get_model

    llms: dict[str, ModelLLM] = {}
    if default is not None:
        llms[settings.default_model] = default
    lock = threading.Lock()

    def llm_for(profile: str) -> ModelLLM:
        with lock:
            llm = llms.get(profile)
            if llm is None:
                llm = llms[profile] = ModelLLM(factory=lambda: get_model(profile, settings))
            return llm

    return llm_for


ServicesFactory = Callable[["Settings", "Store"], Services]


def load_services_factory(spec: str) -> ServicesFactory:
    """``module:function`` → the factory it names (workers load their tools this way)."""
    factory = import_attr(spec, what="services factory", example="--services mypkg.agents:services")
    if not callable(factory):
        raise InputError(f"{spec} is not a function", hint="name a function(settings, store)")
    return factory  # type: ignore[no-any-return]
