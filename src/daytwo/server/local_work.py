"""Requests bound by this machine's CPU and database run on threads sized to its cores.

FastAPI runs a plain ``def`` endpoint on anyio's shared thread pool (40 threads), which
also serves blocking work that mostly waits (a model call, a slow tool backend). For a
request that only computes and reads the database, threads beyond the cores add no
throughput: they contend for the interpreter lock, and every SQLite or numpy call that
releases it becomes a contended hand-over. An ``async`` endpoint hands such work to
:func:`run_local` instead: at most ``request_cpu_threads`` run at once (default: the
CPU count) and the rest wait on the event loop, holding no thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request

__all__ = ["local_threads", "run_local"]

R = TypeVar("R")


def local_threads(request: Request) -> int:
    """How many local-work requests of this process may run at once."""
    settings = getattr(request.app.state, "settings", None)
    configured = getattr(settings, "request_cpu_threads", None)
    return int(configured or os.cpu_count() or 1)


def _limiter(request: Request) -> anyio.CapacityLimiter:
    # Made on first use, on the event loop (a limiter belongs to one); there are no
    # awaits between the look-up and the assignment, so no two are made.
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "local_limiter", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(local_threads(request))
        request.app.state.local_limiter = limiter
    return limiter


async def run_local(request: Request, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` on a local-work thread (in the request's context variables)."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=_limiter(request))
