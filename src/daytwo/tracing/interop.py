"""What other tools need to render daytwo's spans right, added on the way out over OTLP.

daytwo's spans carry the GenAI semantic conventions plus ``daytwo.*`` attributes. Receivers
such as Arize Phoenix, Langfuse or any OpenInference-aware UI also need a span kind on
every span, the user and session, token counts and cost under their own names, and
content in their own shapes. :class:`InteropExporter` wraps the OTLP exporter and adds:

- ``openinference.span.kind`` on every span: LLM, EMBEDDING, TOOL, RETRIEVER, AGENT (a
  run: ``daytwo.run.id`` without a step), CHAIN (steps and everything else);
  ``gen_ai.operation.name="invoke_agent"`` and ``gen_ai.agent.name`` on runs;
- ``user.id`` / ``session.id`` from ``daytwo.principal`` / ``daytwo.session.id``;
- on model calls: ``llm.model_name`` (the profile name), ``llm.provider``,
  ``llm.token_count.*``, and the exact cost (``daytwo.cost_usd`` as decimal text,
  ``gen_ai.usage.cost`` and ``llm.cost.total`` as numbers) priced like the ledger;
- captured content (see :mod:`daytwo.tracing.content`) as ``input.value`` /
  ``output.value`` and ``retrieval.documents.N.document.*``.

A model-call span with another model-call span below it (a wrapper) is exported as a
CHAIN without usage, so a receiver counts every token once, as the ledger does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util.types import AttributeValue

from daytwo.tracing import attributes as A
from daytwo.tracing.conventions import OPENINFERENCE_KIND as KIND
from daytwo.tracing.pricing import PriceSource, span_cost

__all__ = ["InteropExporter", "interop_attributes", "span_kind"]

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
RETRIEVAL_DOCUMENTS = "daytwo.retrieval.documents"
INPUT_VALUE = "daytwo.input"
OUTPUT_VALUE = "daytwo.output"

_LLM_OPERATIONS = {"chat", "text_completion", "generate_content"}
_KINDS = {
    "embeddings": "EMBEDDING",
    "execute_tool": "TOOL",
    "retrieval": "RETRIEVER",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
}


def span_kind(attrs: Mapping[str, Any], *, wrapper: bool = False) -> str:
    """The OpenInference span kind of a span with these attributes."""
    operation = attrs.get(A.OPERATION)
    if operation in _LLM_OPERATIONS:
        return "CHAIN" if wrapper else "LLM"
    if isinstance(operation, str) and operation in _KINDS:
        return _KINDS[operation]
    if A.RUN_ID in attrs and A.STEP_ID not in attrs:
        return "AGENT"
    return "CHAIN"


def _text_of(messages: Any) -> str | None:
    """The text of the last message in GenAI ``parts`` form (what a UI shows as the value)."""
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict):
        return None
    texts = [
        str(p.get("content", ""))
        for p in last.get("parts", [])
        if isinstance(p, dict) and p.get("type") == "text"
    ]
    return "\n".join(texts) if texts else None


def _load(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return None


def _content(attrs: Mapping[str, Any], out: dict[str, AttributeValue]) -> None:
    for source, target in (
        (INPUT_MESSAGES, "llm.input_messages"),
        (OUTPUT_MESSAGES, "llm.output_messages"),
    ):
        messages = _load(attrs.get(source))
        if isinstance(messages, list):
            for i, msg in enumerate(messages):
                if not isinstance(msg, dict):
                    continue
                out[f"{target}.{i}.message.role"] = str(msg.get("role", ""))
                out[f"{target}.{i}.message.content"] = _text_of([msg]) or ""
            text = _text_of(messages)
            if text is not None:
                value_key = "input.value" if source == INPUT_MESSAGES else "output.value"
                out[value_key] = str(attrs.get(source)) if value_key == "input.value" else text
                out[value_key.replace("value", "mime_type")] = (
                    "application/json" if value_key == "input.value" else "text/plain"
                )
    for source, target in (
        (TOOL_ARGUMENTS, "input"),
        (TOOL_RESULT, "output"),
        (INPUT_VALUE, "input"),
        (OUTPUT_VALUE, "output"),
    ):
        value = attrs.get(source)
        if isinstance(value, str) and f"{target}.value" not in out:
            out[f"{target}.value"] = value
            out[f"{target}.mime_type"] = (
                "application/json" if _load(value) is not None else "text/plain"
            )
    docs = _load(attrs.get(RETRIEVAL_DOCUMENTS))
    if isinstance(docs, list):
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict):
                continue
            prefix = f"retrieval.documents.{i}.document"
            out[f"{prefix}.id"] = str(doc.get("id", ""))
            if doc.get("content") is not None:
                out[f"{prefix}.content"] = str(doc["content"])
            if isinstance(doc.get("score"), int | float):
                out[f"{prefix}.score"] = float(doc["score"])


def interop_attributes(
    span: ReadableSpan, prices: PriceSource | None = None, *, wrapper: bool = False
) -> dict[str, AttributeValue]:
    """The attributes :class:`InteropExporter` adds to (or, for a wrapper, drops from) ``span``."""
    attrs: Mapping[str, Any] = span.attributes or {}
    out: dict[str, AttributeValue] = {}
    kind = span_kind(attrs, wrapper=wrapper)
    out[KIND] = kind
    if kind == "AGENT" and A.OPERATION not in attrs:
        out[A.OPERATION] = "invoke_agent"
    if kind == "AGENT" and isinstance(attrs.get(A.AGENT_NAME), str):
        out["gen_ai.agent.name"] = attrs[A.AGENT_NAME]
        out["agent.name"] = attrs[A.AGENT_NAME]
    if isinstance(attrs.get(A.PRINCIPAL), str):
        out["user.id"] = attrs[A.PRINCIPAL]
    if isinstance(attrs.get(A.SESSION_ID), str):
        out["session.id"] = attrs[A.SESSION_ID]
    if kind in ("LLM", "EMBEDDING"):
        model = attrs.get(A.MODEL_PROFILE) or attrs.get(A.RESPONSE_MODEL)
        model = model or attrs.get(A.REQUEST_MODEL)
        if isinstance(model, str):
            out["llm.model_name" if kind == "LLM" else "embedding.model_name"] = model
        if isinstance(attrs.get(A.PROVIDER), str):
            out["llm.provider"] = attrs[A.PROVIDER]
        prompt = attrs.get(A.USAGE_INPUT)
        completion = attrs.get(A.USAGE_OUTPUT)
        if isinstance(prompt, int):
            out["llm.token_count.prompt"] = prompt
        if isinstance(completion, int):
            out["llm.token_count.completion"] = completion
        if isinstance(prompt, int) or isinstance(completion, int):
            out["llm.token_count.total"] = int(prompt or 0) + int(completion or 0)
        cached = attrs.get(A.USAGE_CACHE_READ_INPUT)
        if isinstance(cached, int):
            out["llm.token_count.prompt_details.cache_read"] = cached
    if (kind in ("LLM", "EMBEDDING") or A.TOOL_COST_USD in attrs) and prices is not None:
        from datetime import UTC, datetime

        at = datetime.fromtimestamp((span.start_time or 0) / 1e9, UTC)
        cost = span_cost(attrs, at, prices)
        if cost is not None and cost.usd is not None:
            out["daytwo.cost_usd"] = str(cost.usd)
            out["gen_ai.usage.cost"] = float(cost.usd)
            out["llm.cost.total"] = float(cost.usd)
    if kind == "TOOL" and isinstance(attrs.get(A.TOOL_NAME), str):
        out["tool.name"] = attrs[A.TOOL_NAME]
    _content(attrs, out)
    return out


_USAGE = (
    A.USAGE_INPUT,
    A.USAGE_OUTPUT,
    A.USAGE_CACHE_READ_INPUT,
    A.USAGE_REASONING_OUTPUT,
)


def _copy(span: ReadableSpan, attributes: Mapping[str, AttributeValue]) -> ReadableSpan:
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class InteropExporter(SpanExporter):
    """Wraps an exporter (OTLP): each span leaves with :func:`interop_attributes` added."""

    def __init__(self, inner: SpanExporter, prices: PriceSource | None = None) -> None:
        self.inner = inner
        self.prices = prices
        self._lock = threading.Lock()
        # Span ids with a model call somewhere below them. Children end (and are
        # exported) before their parents, so a parent learns it is a wrapper in time.
        self._below_cost: set[int] = set()

    def _rewrite(self, span: ReadableSpan) -> ReadableSpan:
        attrs: Mapping[str, Any] = span.attributes or {}
        ctx = span.get_span_context()
        span_id = ctx.span_id if ctx is not None else 0
        is_call = attrs.get(A.OPERATION) in A.COST_OPERATIONS
        with self._lock:
            below = span_id in self._below_cost
            self._below_cost.discard(span_id)
            if (is_call or below) and span.parent is not None:
                self._below_cost.add(span.parent.span_id)
            if len(self._below_cost) > 100_000:  # parents that never ended: forget them
                self._below_cost.clear()
        wrapper = is_call and below
        extra = interop_attributes(span, self.prices, wrapper=wrapper)
        merged = {k: v for k, v in attrs.items() if not (wrapper and k in _USAGE)}
        merged.update(extra)
        return _copy(span, merged)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export the rewritten spans through the wrapped exporter."""
        return self.inner.export([self._rewrite(s) for s in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)
