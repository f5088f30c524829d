"""HTTP clients for model SDKs that send the current trace context (W3C ``traceparent``).

Give one to a model client (``openai.OpenAI(http_client=...)``,
``ChatOpenAI(http_client=...)``) so the daytwo model gateway's own ``chat`` span
joins the agent's trace: the call then counts once, inside the framework's span.
They are the ``openai`` SDK's own default clients (its HTTP library), with one
request hook added.
"""

from __future__ import annotations

from typing import Any

import openai
from opentelemetry import propagate

__all__ = ["async_http_client", "http_client"]


def _inject(request: Any) -> None:
    propagate.inject(request.headers)


async def _ainject(request: Any) -> None:
    propagate.inject(request.headers)


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
