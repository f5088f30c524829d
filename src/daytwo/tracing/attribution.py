"""Attributes that every span opened inside a block carries (who called, for which tenant).

An entry point that serves a caller (the model gateway, an API route) knows the
principal, tenant, session and end user; the layers below open the spans. Instead
of threading those values through every call, the entry point wraps the work in
``with attributed({...}):`` and the span processor installed by
:func:`~daytwo.tracing.setup.setup_tracing` copies them onto each span *started*
in that context (a context variable, so it follows ``bind_context`` and
``run_in_threadpool`` into threads). Attributes the span sets itself win.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry.util.types import AttributeValue

__all__ = ["attributed", "current_attribution", "set_attribution"]

_ATTRIBUTES: ContextVar[Mapping[str, AttributeValue] | None] = ContextVar(
    "daytwo_attribution", default=None
)


@contextmanager
def attributed(attributes: Mapping[str, AttributeValue | None]) -> Iterator[None]:
    """Spans started inside the block carry ``attributes`` (None values are left out)."""
    merged = dict(_ATTRIBUTES.get() or {})
    merged.update({k: v for k, v in attributes.items() if v is not None})
    token = _ATTRIBUTES.set(merged)
    try:
        yield
    finally:
        _ATTRIBUTES.reset(token)


def set_attribution(attributes: Mapping[str, AttributeValue | None]) -> None:
    """Like :func:`attributed`, for the rest of a context the caller owns (one made by
    ``contextvars.copy_context()`` and entered with ``Context.run``)."""
    merged = dict(_ATTRIBUTES.get() or {})
    merged.update({k: v for k, v in attributes.items() if v is not None})
    _ATTRIBUTES.set(merged)


def current_attribution() -> Mapping[str, AttributeValue] | None:
    """The attributes of the enclosing :func:`attributed` blocks (None outside any)."""
    return _ATTRIBUTES.get()
