"""Every error daytwo raises on purpose.

The tree (a user's mistake is a ``UserError``; the CLI prints its message and
its ``hint`` on one red line and exits 2, the server maps it to a 4xx)::

    DaytwoError
    ├── UserError                     the caller can fix it; CLI exit code 2
    │   ├── ConfigError               unknown setting, unreadable daytwo.toml, bad value
    │   ├── InputError                malformed file, argument or request body
    │   │   ├── SchemaDefinitionError a JSON Schema that is not valid JSON Schema
    │   │   └── SpecError             an agent spec: bad YAML, unknown field or step, a cycle
    │   ├── NotFoundError             unknown id, name, profile, set or version
    │   │   └── ToolNotFound          no tool (or no version of it) of that name
    │   ├── ConflictError             already exists / changed under the same version / busy
    │   ├── PermissionDenied          principal or agent may not do this
    │   │   ├── NotAuthenticated      no key, an unknown or a revoked key (HTTP 401)
    │   │   ├── CodeExecutionDenied   a backend that runs code on the server was refused
    │   │   ├── SsrfBlocked           an HTTP backend points at a private address
    │   │   └── ToolRateLimited       a per-agent or per-tool rate limit, ``retry_after``
    │   ├── MissingDependency         an optional package or model file is absent
    │   └── StoreError                the system of record cannot be used as asked
    │       ├── DatabaseUnavailable   wrong URL, server down, file not openable
    │       ├── DatabaseLocked        another process holds the SQLite write lock
    │       └── SchemaOutdated        the database is older (or newer) than the code
    ├── ModelError                    talking to an LLM or embedder failed
    │   ├── TransportError            timeout, connection refused, 5xx (retryable)
    │   │   └── RateLimited           HTTP 429, carries ``retry_after``
    │   ├── ContextOverflow           a request does not fit the target context window
    │   └── StructuredOutputError     no rung of the repair ladder produced valid output
    ├── ToolError                     a gateway tool call failed
    │   ├── BackendError              backend timeout, non-JSON, HTTP error
    │   │   └── BackendTimeout        no answer within the tool's timeout
    │   ├── ContractViolation         input or output fails the tool contract (a UserError)
    │   │   └── PayloadTooLarge       bigger or deeper than the tool's policy allows
    │   ├── DriftBlocked              semantic drift with policy ``block``
    │   └── NoToolAvailable           every tool of a capability is circuit-broken or excluded
    ├── BudgetExceeded                a run went past its step/token/cost/time budget
    ├── RunFailed                     a step failed for good, an approval was rejected
    └── IntegrityError                a tamper-evident record does not verify

Errors carry context (``hint`` always; subclasses add attempts, usage, counts)
so that callers can act on them without parsing messages.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendError",
    "BackendTimeout",
    "BudgetExceeded",
    "CodeExecutionDenied",
    "ConfigError",
    "ConflictError",
    "ContextOverflow",
    "ContractViolation",
    "DatabaseLocked",
    "DatabaseUnavailable",
    "DaytwoError",
    "DriftBlocked",
    "InputError",
    "IntegrityError",
    "MissingDependency",
    "ModelError",
    "NoToolAvailable",
    "NotAuthenticated",
    "NotFoundError",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RunFailed",
    "SchemaDefinitionError",
    "SchemaOutdated",
    "SpecError",
    "SsrfBlocked",
    "StoreError",
    "StructuredOutputError",
    "ToolError",
    "ToolNotFound",
    "ToolRateLimited",
    "TransportError",
    "UserError",
]


class DaytwoError(Exception):
    """Base of every daytwo error. ``hint`` says how to fix it, when we know."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.context = context

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UserError(DaytwoError):
    """The caller can fix this; the CLI exits 2 and the server answers 4xx."""

    exit_code = 2


class ConfigError(UserError):
    """A setting is unknown, unreadable or invalid."""


class InputError(UserError):
    """A file, argument or request body is malformed."""


class SchemaDefinitionError(InputError):
    """A JSON Schema given by the user is not itself valid JSON Schema."""


class SpecError(InputError):
    """An agent spec is malformed: bad YAML, unknown field or step, a cycle."""


class NotFoundError(UserError):
    """An id, name, profile, set or version does not exist."""


class ToolNotFound(NotFoundError):
    """No tool (or no version of it) matches the name asked for."""


class ConflictError(UserError):
    """The thing exists already, changed under the same version, or is busy."""


class PermissionDenied(UserError):
    """The principal, agent or role is not allowed to do this."""


class NotAuthenticated(PermissionDenied):
    """No key, an unknown key, or a revoked key (HTTP 401)."""


class CodeExecutionDenied(PermissionDenied):
    """A backend that runs code on the server was refused (HTTP 403)."""


class SsrfBlocked(PermissionDenied):
    """An HTTP backend points at a private, loopback or link-local address not allow-listed."""


class ToolRateLimited(PermissionDenied):
    """A per-agent or per-tool rate limit is exhausted; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: float, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class MissingDependency(UserError):
    """An optional package or a model file is not installed."""


class StoreError(UserError):
    """The system of record cannot be used as asked."""


class DatabaseUnavailable(StoreError):
    """The database URL is wrong, the server is down, or the file cannot be opened."""


class DatabaseLocked(StoreError):
    """Another process holds the SQLite write lock for longer than the busy timeout."""


class SchemaOutdated(StoreError):
    """The database schema does not match the code: run ``daytwo db upgrade``."""


class ModelError(DaytwoError):
    """Talking to an LLM or an embedder failed."""


class TransportError(ModelError):
    """Timeout, refused connection or 5xx: worth retrying."""


class RateLimited(TransportError):
    """HTTP 429. ``retry_after`` is in seconds when the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ContextOverflow(ModelError, UserError):
    """A request does not fit the target model's context window."""

    exit_code = 2


class StructuredOutputError(ModelError):
    """No rung of the repair ladder produced schema-valid output."""


class ToolError(DaytwoError):
    """A gateway tool call failed."""


class BackendError(ToolError):
    """The tool backend timed out, answered non-JSON, or answered an HTTP error."""


class BackendTimeout(BackendError):
    """The backend did not answer within the tool's timeout."""


class ContractViolation(ToolError, UserError):
    """Input or output does not satisfy the tool contract."""

    exit_code = 2


class PayloadTooLarge(ContractViolation):
    """A request or response is bigger or deeper than the tool's policy allows."""


class DriftBlocked(ToolError):
    """The tool's output drifted semantically and its policy is ``block``."""


class NoToolAvailable(ToolError):
    """Every tool of a capability is circuit-broken or excluded."""


class BudgetExceeded(DaytwoError):
    """A run went past its step, token, cost or wall-time budget."""


class RunFailed(DaytwoError):
    """A run stopped: a step failed for good, an approval was rejected, or a budget ran out."""


class IntegrityError(DaytwoError):
    """A tamper-evident record does not verify."""
