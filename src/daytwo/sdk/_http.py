"""httpx clients that send the current trace context (W3C ``traceparent``) on each request.

Give one to a framework's model client (``ChatOpenAI(http_client=...)``,
``openai.OpenAI(http_client=...)``) so the daytwo model gateway's own ``chat`` span
joins the agent's trace: the call then counts once, inside the framework's span.
"""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry import propagate

__all__ = ["async_http_client", "http_client"]


def _inject(request: httpx.Request) -> None:
    propagate.inject(request.headers)


async def _ainject(request: httpx.Request) -> None:
    propagate.inject(request.headers)


def http_client(**kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` (``kwargs`` as httpx takes them) that propagates the trace."""
    hooks = dict(kwargs.pop("event_hooks", None) or {})
    hooks["request"] = [*hooks.get("request", []), _inject]
    return httpx.Client(event_hooks=hooks, **kwargs)


def async_http_client(**kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that propagates the trace."""
    hooks = dict(kwargs.pop("event_hooks", None) or {})
    hooks["request"] = [*hooks.get("request", []), _ainject]
    return httpx.AsyncClient(event_hooks=hooks, **kwargs)
