"""What a step needs from the other layers, as small Protocols, plus plain implementations.

The engine only talks to these; :mod:`daytwo.runtime.adapters` binds them to the
knowledge base, the model layer, the gateway and the tracing layer. The plain
implementations here (python callables as tools, a telemetry table filled by the
caller, a retriever over a function) are real and used by tests and benchmarks; an
LLM is always the models layer's (:class:`daytwo.runtime.adapters.ModelLLM`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from opentelemetry import trace

from daytwo.exceptions import NotFoundError
from daytwo.models.prompts import PromptDefinition
from daytwo.models.types import Usage

if TYPE_CHECKING:
    # The gateway's own types. Importing the gateway package loads all of it, so they
    # are imported where first used (``ToolStats`` through this module's __getattr__).
    from daytwo.gateway.gateway import DriftAlert
    from daytwo.gateway.telemetry import ToolStats

__all__ = [
    "LLM",
    "AuditSink",
    "CallableRetriever",
    "LLMResult",
    "PromptLLM",
    "PythonTools",
    "Retriever",
    "StaticTelemetry",
    "TelemetrySource",
    "ToolInvoker",
    "ToolOutcome",
    "ToolStats",
]


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call returned, with its cost and what the gateway noticed.

    ``replayed``: the result was the stored one of an earlier call with the same
    idempotency key (no second side effect); ``flags``: policy flags such as
    ``prompt_injection:<field>``; ``alerts``: new drift alerts the call raised.
    """

    output: Any
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    replayed: bool = False
    flags: tuple[str, ...] = ()
    alerts: tuple[DriftAlert, ...] = ()


@dataclass(frozen=True)
class LLMResult:
    """One LLM answer: text, parsed JSON when a schema was asked for, usage and cost.

    ``usage`` is the models layer's own :class:`~daytwo.models.types.Usage` (cached and
    reasoning tokens included); ``cost_usd`` its price, the one the ledger computes.
    """

    text: str
    data: Any = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    model: str = ""


_T = TypeVar("_T")
_CALL_DEADLINE: ContextVar[float | None] = ContextVar("daytwo_tool_call_deadline", default=None)


def call_deadline() -> float | None:
    """The ``time.monotonic()`` by which the current tool call must finish (the step's
    latency budget left), or ``None``; an invoker may pass it on (the gateway caps a
    backend's ``Retry-After`` with it)."""
    return _CALL_DEADLINE.get()


def with_call_deadline(deadline: float | None, fn: Callable[[], _T]) -> _T:
    """``fn()`` with :func:`call_deadline` answering ``deadline``."""
    token = _CALL_DEADLINE.set(deadline)
    try:
        return fn()
    finally:
        _CALL_DEADLINE.reset(token)


@runtime_checkable
class ToolInvoker(Protocol):
    """Calls tools by name; knows the catalog and which tools offer a capability."""

    def call(
        self, tool: str, arguments: dict[str, Any], *, agent: str, idempotency_key: str
    ) -> ToolOutcome: ...

    def tools(self, capability: str | None = None) -> list[str]: ...


@runtime_checkable
class TelemetrySource(Protocol):
    """Live latency, error rate and cost per tool."""

    def snapshot(self, tool: str) -> ToolStats: ...


@runtime_checkable
class Retriever(Protocol):
    """Searches a knowledge collection as a principal; hits are plain dicts.

    ``groups``: the groups of the end user a run acts for (None: the retriever's own).
    """

    def search(
        self,
        collection: str,
        query: str,
        *,
        principal: str,
        k: int,
        mode: str,
        groups: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]: ...


@runtime_checkable
class LLM(Protocol):
    """Chat completion, optionally constrained to a JSON schema."""

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        schema: dict[str, Any] | None,
        max_tokens: int,
    ) -> LLMResult: ...


@runtime_checkable
class PromptLLM(Protocol):
    """An LLM that compiles abstract prompt definitions for its own model."""

    def complete_prompt(self, definition: PromptDefinition, *, max_tokens: int) -> LLMResult: ...


@runtime_checkable
class AuditSink(Protocol):
    """Appends audit records (run start/end, steps)."""

    def append(self, kind: str, actor: str, subject: str, data: dict[str, Any]) -> None: ...


ToolFn = Callable[..., Any]
_tracer = trace.get_tracer("daytwo.runtime")


@dataclass
class PythonTools:
    """Tools that are plain Python callables, grouped by capability.

    A callable receives the arguments as keyword arguments plus
    ``idempotency_key``; what it returns is the output. ``cost`` gives a per-call
    price per tool.
    """

    functions: dict[str, ToolFn] = field(default_factory=dict)
    capabilities: dict[str, list[str]] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)

    def add(
        self, name: str, fn: ToolFn, *, capability: str | None = None, cost_usd: float = 0.0
    ) -> None:
        """Register a tool (optionally under a capability)."""
        self.functions[name] = fn
        self.cost[name] = cost_usd
        if capability:
            self.capabilities.setdefault(capability, []).append(name)

    def tools(self, capability: str | None = None) -> list[str]:
        if capability is None:
            return sorted(self.functions)
        return list(self.capabilities.get(capability, []))

    def call(
        self, tool: str, arguments: dict[str, Any], *, agent: str, idempotency_key: str
    ) -> ToolOutcome:
        fn = self.functions.get(tool)
        if fn is None:
            raise NotFoundError(f"unknown tool {tool!r}", hint="register it first")
        cost = self.cost.get(tool, 0.0)
        # This is the layer that makes the call: it opens the call's one span.
        with _tracer.start_as_current_span(f"execute_tool {tool}") as span:
            span.set_attribute("gen_ai.operation.name", "execute_tool")
            span.set_attribute("gen_ai.tool.name", tool)
            started = time.perf_counter()
            output = fn(**arguments, idempotency_key=idempotency_key)
            latency_ms = (time.perf_counter() - started) * 1000
            span.set_attribute("daytwo.tool.cost_usd", cost)
        return ToolOutcome(output=output, cost_usd=cost, latency_ms=latency_ms)


class StaticTelemetry:
    """Telemetry figures set by the caller (tests, benchmarks, offline planning)."""

    def __init__(self, stats: Mapping[str, ToolStats] | None = None) -> None:
        self._stats = dict(stats or {})
        self._lock = threading.Lock()

    def set(self, tool: str, stats: ToolStats) -> None:
        """Replace the figures of one tool."""
        with self._lock:
            self._stats[tool] = stats

    def snapshot(self, tool: str) -> ToolStats:
        with self._lock:
            stats = self._stats.get(tool)
        if stats is None:
            from daytwo.gateway.telemetry import ToolStats

            return ToolStats()
        return stats


@dataclass
class CallableRetriever:
    """A retriever backed by a function ``(collection, query, k) -> list of hits``.

    It has no access control: ``principal`` and ``groups`` are not used.
    """

    fn: Callable[[str, str, int], list[dict[str, Any]]]

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
        return self.fn(collection, query, k)


def __getattr__(name: str) -> Any:
    if name == "ToolStats":  # the gateway's (see the TYPE_CHECKING import above)
        from daytwo.gateway.telemetry import ToolStats

        return ToolStats
    raise AttributeError(name)
