"""Carry the trace context across HTTP/MCP calls, threads, processes and DBOS steps.

HTTP and MCP use W3C ``traceparent``/``tracestate`` headers through the globally
configured OpenTelemetry propagator. Threads get the caller's context with
:func:`bind_context`. For DBOS workflow steps and worker processes, serialise the
context into the step's input with :func:`context_carrier` and re-enter it inside the
step with :func:`attached` -- the step's spans then belong to the initiating trace.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context

__all__ = ["attached", "bind_context", "context_carrier", "extract_context", "inject_context"]

P = ParamSpec("P")
R = TypeVar("R")


def inject_context(
    headers: MutableMapping[str, str] | None = None, context: Context | None = None
) -> MutableMapping[str, str]:
    """Add ``traceparent`` (and ``tracestate``) of the current span to ``headers``; return them."""
    carrier: MutableMapping[str, str] = {} if headers is None else headers
    propagate.inject(carrier, context=context)
    return carrier


def extract_context(headers: Mapping[str, str]) -> Context:
    """The context carried by incoming headers (case-insensitive), for ``start_as_current_span``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return propagate.extract(lowered)


def context_carrier() -> dict[str, str]:
    """The current trace context as a small JSON-serialisable dict (for step inputs)."""
    return dict(inject_context({}))


@contextmanager
def attached(carrier: Mapping[str, str] | None) -> Iterator[Context]:
    """Make the context in ``carrier`` current for the block.

    A no-op for an empty or invalid carrier, and when the carrier names the span that
    is already current (the step ran in the thread that serialised it): the live
    span stays current, so events recorded on it are not lost on a stand-in.
    """
    current = otel_context.get_current()
    if not carrier:
        yield current
        return
    ctx = extract_context(carrier)
    incoming = trace.get_current_span(ctx).get_span_context()
    here = trace.get_current_span(current).get_span_context()
    if not incoming.is_valid or (
        incoming.trace_id == here.trace_id and incoming.span_id == here.span_id
    ):
        yield current
        return
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)


def bind_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` so it runs in the caller's context (pass the result to a thread/executor)."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.copy().run(fn, *args, **kwargs)

    return run
