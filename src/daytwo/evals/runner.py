"""What evals need from an agent: the ``AgentRunner`` protocol and its result.

The eval machinery only sees this protocol, so it works with the durable
runtime (:mod:`daytwo.evals.bindings`), with a bare model
(:class:`ModelAgentRunner`), or with any Python callable a user hands in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from daytwo.evals.cases import Case
from daytwo.models.types import Message

__all__ = [
    "AgentResult",
    "AgentRunner",
    "CallableRunner",
    "ChatLike",
    "ModelAgentRunner",
]


@dataclass
class AgentResult:
    """What an agent did on one input: answer, tool calls, retrieval, usage, trace."""

    output: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    retrieved_ids: list[str] = field(default_factory=list)
    retrieved_context: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    trace_id: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_output(self) -> dict[str, Any]:
        """What is stored in ``eval_results.output``."""
        return {
            "output": self.output,
            "tool_calls": self.tool_calls,
            "retrieved_ids": self.retrieved_ids,
            "retrieved_context": self.retrieved_context,
            **({"extra": self.extra} if self.extra else {}),
        }


@runtime_checkable
class AgentRunner(Protocol):
    """Runs one agent version on one case. Must be safe to call from several threads."""

    name: str
    version: str

    def run(self, case: Case) -> AgentResult:
        """Run the agent on the case's input; errors go into ``AgentResult.error``."""
        ...


class CallableRunner:
    """Wrap ``fn(case) -> AgentResult | str`` (a plain string is the answer)."""

    def __init__(
        self, fn: Callable[[Case], AgentResult | str], *, name: str, version: str = "0"
    ) -> None:
        self.fn = fn
        self.name = name
        self.version = version

    def run(self, case: Case) -> AgentResult:
        """Call the function, timing it and catching its errors."""
        started = time.perf_counter()
        try:
            out = self.fn(case)
        except Exception as exc:
            return AgentResult(
                output=None,
                error=f"{type(exc).__name__}: {exc}",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        result = out if isinstance(out, AgentResult) else AgentResult(output=str(out))
        if not result.latency_ms:
            result.latency_ms = (time.perf_counter() - started) * 1000
        return result


class ChatLike(Protocol):
    """A chat model (``OpenAICompatProvider`` fits)."""

    def chat(self, messages: Sequence[Message], **options: Any) -> Any:
        """One chat completion returning a ``ChatResponse``."""
        ...


class ModelAgentRunner:
    """The simplest agent: a system prompt and a model, optionally with a fixed context.

    ``retrieve(case) -> list[(doc_id, text)]`` adds retrieved context to the
    prompt and to the result (so retrieval metrics and faithfulness apply).
    """

    def __init__(
        self,
        model: ChatLike,
        *,
        name: str = "model",
        version: str = "0",
        system: str = "You are a concise, accurate customer-support assistant.",
        retrieve: Callable[[Case], list[tuple[str, str]]] | None = None,
        max_tokens: int = 96,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.name = name
        self.version = version
        self.system = system
        self.retrieve = retrieve
        self.max_tokens = max_tokens
        self.seed = seed

    def run(self, case: Case) -> AgentResult:
        """Answer the case's input in one model call."""
        from daytwo.exceptions import DaytwoError

        started = time.perf_counter()
        hits = self.retrieve(case) if self.retrieve else []
        system = self.system
        if hits:
            system += "\nAnswer from this context:\n" + "\n".join(f"- {t}" for _, t in hits)
        try:
            reply = self.model.chat(
                [Message(role="system", content=system), Message(role="user", content=case.input)],
                max_tokens=self.max_tokens,
                temperature=0.0,
                seed=self.seed,
            )
        except DaytwoError as exc:
            return AgentResult(
                output=None,
                retrieved_ids=[d for d, _ in hits],
                retrieved_context=[t for _, t in hits],
                error=f"{type(exc).__name__}: {exc}",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        return AgentResult(
            output=reply.text,
            tool_calls=[
                {"name": c.name, "arguments": c.arguments} for c in getattr(reply, "tool_calls", [])
            ],
            retrieved_ids=[d for d, _ in hits],
            retrieved_context=[t for _, t in hits],
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
