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

__all__ = ["acting_for", "current_principal", "current_run_id"]

_principal: ContextVar[str | None] = ContextVar("daytwo_run_principal", default=None)
_run_id: ContextVar[str | None] = ContextVar("daytwo_run_id", default=None)


def current_principal() -> str | None:
    """The principal string of the run being executed in this context (``None``: no run)."""
    return _principal.get()


def current_run_id() -> str | None:
    """The id of the run being executed in this context (``None``: no run)."""
    return _run_id.get()


@contextmanager
def acting_for(principal: str, run_id: str | None = None) -> Iterator[None]:
    """Run the body as ``principal`` (the run's recorded principal string) of run ``run_id``."""
    token = _principal.set(principal)
    run_token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(run_token)
        _principal.reset(token)
