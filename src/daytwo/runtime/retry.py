"""Per-step retries: exponential backoff with jitter; a 429's Retry-After wins.

A store that is locked or unreachable (``DatabaseLocked``, ``DatabaseUnavailable``) is an
infrastructure fault, not the step's: it is always retried (at least
:data:`INFRASTRUCTURE_ATTEMPTS` tries), whatever ``retry_on`` names, and the engine does
not re-plan to another tool because of it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from daytwo.exceptions import DatabaseLocked, DatabaseUnavailable, DaytwoError
from daytwo.runtime.budget import usd
from daytwo.runtime.spec import RetryPolicy

__all__ = [
    "INFRASTRUCTURE_ATTEMPTS",
    "INFRASTRUCTURE_FAULTS",
    "Attempts",
    "is_infrastructure_fault",
    "is_retryable",
    "run_with_retries",
    "wait_for",
]

T = TypeVar("T")

INFRASTRUCTURE_FAULTS: tuple[type[BaseException], ...] = (DatabaseLocked, DatabaseUnavailable)
INFRASTRUCTURE_FAULT_NAMES = frozenset(cls.__name__ for cls in INFRASTRUCTURE_FAULTS)
INFRASTRUCTURE_ATTEMPTS = 4


def is_infrastructure_fault(exc: BaseException | str | None) -> bool:
    """True for a store lock or outage (an exception, or its class name in a step result)."""
    if isinstance(exc, str):
        return exc in INFRASTRUCTURE_FAULT_NAMES
    return isinstance(exc, INFRASTRUCTURE_FAULTS)


def is_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """True when the exception (or a base class) is named in ``policy.retry_on``.

    Infrastructure faults are always retryable.
    """
    if is_infrastructure_fault(exc):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & set(policy.retry_on))


def wait_for(policy: RetryPolicy, attempt: int, exc: BaseException | None) -> float:
    """Seconds to wait before try ``attempt + 1``: Retry-After if given, else backoff + jitter."""
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, (int, float)) and retry_after >= 0:
        return float(retry_after)
    base = min(policy.max_backoff_s, policy.backoff_s * policy.multiplier ** (attempt - 1))
    return base + random.uniform(0, policy.jitter_s)


@dataclass
class Attempts:
    """What the retries did: errors seen (type: message) and time waited."""

    errors: list[str] = field(default_factory=list)
    waited_s: float = 0.0
    cost_usd: Decimal = field(default_factory=Decimal)
    """What the failed tries spent: a model call whose answer failed validation was
    still paid for (the ledger prices its ``chat`` span), and the run counts it too."""
    tokens: int = 0

    @property
    def count(self) -> int:
        """Failed tries so far."""
        return len(self.errors)

    def failed(self, exc: BaseException) -> None:
        """Count one failed try: its error and, when the error says so (``cost_usd`` and
        ``tokens`` in a :class:`~daytwo.exceptions.DaytwoError`'s context), its spend."""
        self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        context = exc.context if isinstance(exc, DaytwoError) else {}
        self.cost_usd += usd(context.get("cost_usd", 0))
        self.tokens += int(context.get("tokens", 0))


def run_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    attempts: Attempts,
    *,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """Call ``fn`` under the policy; the last error propagates when tries run out."""
    # Fast path: most calls succeed first time; build the retry machinery only on failure.
    try:
        return fn()
    except BaseException as exc:
        first: BaseException = exc
    attempts.failed(first)
    if is_infrastructure_fault(first) and policy.attempts < INFRASTRUCTURE_ATTEMPTS:
        policy = policy.model_copy(update={"attempts": INFRASTRUCTURE_ATTEMPTS})
    if policy.attempts == 1 or not is_retryable(first, policy):
        raise first
    seconds = wait_for(policy, 1, first)
    attempts.waited_s += seconds
    sleep(seconds)
    policy = policy.model_copy(update={"attempts": policy.attempts - 1})
    offset = 1

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        seconds = wait_for(policy, state.attempt_number + offset, exc)
        attempts.waited_s += seconds
        return seconds

    def record(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is not None:
            attempts.failed(exc)

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=retry_if_exception(lambda e: is_retryable(e, policy)),
        before_sleep=record,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except BaseException as exc:
        # ``before_sleep`` saw every failure that was retried; this is the last one.
        attempts.failed(exc)
        raise
