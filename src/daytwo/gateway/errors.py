"""Gateway-specific errors, each a subclass of the tree in :mod:`daytwo.exceptions`."""

from __future__ import annotations

from typing import Any

from daytwo.exceptions import (
    BackendError,
    ContractViolation,
    NotFoundError,
    PermissionDenied,
)

__all__ = [
    "BackendTimeout",
    "PayloadTooLarge",
    "SsrfBlocked",
    "ToolNotFound",
    "ToolRateLimited",
]


class ToolNotFound(NotFoundError):
    """No tool (or no version of it) matches the name asked for."""


class ToolRateLimited(PermissionDenied):
    """A per-agent or per-tool rate limit is exhausted; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: float, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class SsrfBlocked(PermissionDenied):
    """An HTTP backend points at a private, loopback or link-local address not allow-listed."""


class PayloadTooLarge(ContractViolation):
    """A request or response is bigger or deeper than the tool's policy allows."""


class BackendTimeout(BackendError):
    """The backend did not answer within the tool's timeout."""
