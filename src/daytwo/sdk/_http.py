"""HTTP clients for model SDKs that send the current trace context (W3C ``traceparent``).

Give one to a model client (``openai.OpenAI(http_client=...)``,
``ChatOpenAI(http_client=...)``) so the daytwo model gateway's own ``chat`` span
joins the agent's trace: the call then counts once, inside the framework's span.
They are the ``openai`` SDK's own default clients (its HTTP library), with one
request hook added.
"""

from __future__ import annotations

import sys
from typing import Any

import openai
from opentelemetry import propagate, trace
from opentelemetry.context import Context

__all__ = ["async_http_client", "http_client"]


def _context() -> Context | None:
    """The context to send: the current one, else the current LangChain run's span.

    OpenInference's LangChain instrumentation tracks its spans per LangChain run and
    does not make them current in the OpenTelemetry context (it exposes them with
    ``get_current_span``); without this a model call under LangChain/LangGraph would
    start a trace of its own at the gateway.
    """
    if trace.get_current_span().get_span_context().is_valid:
        return None
    if "langchain_core.runnables" not in sys.modules:
        return None  # LangChain is not running in this process
    try:
        from openinference.instrumentation.langchain import get_current_span

        span = get_current_span()
    except Exception:  # tracing must never break the model call
        return None
    if span is None or not span.get_span_context().is_valid:
        return None
    return trace.set_span_in_context(span)


def _inject(request: Any) -> None:
    propagate.inject(request.headers, context=_context())


async def _ainject(request: Any) -> None:
    propagate.inject(request.headers, context=_context())


def http_client(**kwargs: Any) -> openai.DefaultHttpxClient:
    """The ``openai`` SDK's default HTTP client (``kwargs`` as it takes them), propagating
    the trace context on every request."""
    hooks = dict(kwargs.pop("event_hooks", None) or {})
    hooks["request"] = [*hooks.get("request", []), _inject]
    return openai.DefaultHttpxClient(event_hooks=hooks, **kwargs)


def async_http_client(**kwargs: Any) -> openai.DefaultAsyncHttpxClient:
    """The async counterpart of :func:`http_client` (``openai.AsyncOpenAI``)."""
    hooks = dict(kwargs.pop("event_hooks", None) or {})
    hooks["request"] = [*hooks.get("request", []), _ainject]
    return openai.DefaultAsyncHttpxClient(event_hooks=hooks, **kwargs)
