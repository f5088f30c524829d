"""Who a run acts for, visible to every step and service call of the run.

The engine sets it around a run's execution (first run, replay and recovery alike,
from the workflow's own input), so the services the runtime is given -- tool
invokers, retrievers -- can resolve names inside the run's tenant without a
parameter threaded through every protocol. Map items and other threads started
with :func:`daytwo.tracing.propagation.bind_context` inherit it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["acting_for", "current_principal"]

_principal: ContextVar[str | None] = ContextVar("daytwo_run_principal", default=None)


def current_principal() -> str | None:
    """The principal string of the run being executed in this context (``None``: no run)."""
    return _principal.get()


@contextmanager
def acting_for(principal: str) -> Iterator[None]:
    """Run the body as ``principal`` (the run's recorded principal string)."""
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)
