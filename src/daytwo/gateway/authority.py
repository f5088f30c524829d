"""Which tool backends run code on the server, and who may make them run.

A ``python`` backend imports a module and calls a function in the server process;
an ``mcp`` backend with a ``command`` starts a process. Both are *code execution*:
only a server operator (the CLI on the host, a config file) may register them, and
an operator may narrow them further with two allow-lists
(``allowed_python_backends``, ``allowed_mcp_commands``: shell-style patterns).
HTTP and MCP-over-HTTP backends run no code here (they reach the network through
the SSRF guard) and may be registered by a tenant over the API.

Credentials: the vault has one namespace per tenant. A tool a tenant registered
may only use credentials named ``<tenant>/<name>`` (a server operator stores them
with ``daytwo tools secret-set acme/inventory-token``); a tool made on the host may
use any.

The checks run when a tool is registered *and* when it is called, so a row written
before a rule existed (or straight into the database) cannot run either.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from fnmatch import fnmatchcase

from daytwo.exceptions import CodeExecutionDenied, PermissionDenied
from daytwo.gateway.contracts import (
    HttpBackendSpec,
    McpBackendSpec,
    PythonBackendSpec,
    ToolDefinition,
)

__all__ = [
    "CodeExecutionDenied",
    "check_allowed",
    "check_tenant_credentials",
    "credential_names",
    "refuse_from_api",
    "runs_code",
]


def runs_code(definition: ToolDefinition) -> str | None:
    """What code ``definition``'s backend runs on the server (``None``: none).

    ``"python callable 'm:f'"`` or ``"MCP stdio command 'sh -c …'"``.
    """
    spec = definition.backend
    if isinstance(spec, PythonBackendSpec):
        return f"python callable {spec.callable!r}"
    if isinstance(spec, McpBackendSpec) and spec.command:
        return f"MCP stdio command {shlex.join(spec.command)!r}"
    return None


def _matches(value: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def check_allowed(
    definition: ToolDefinition,
    *,
    python: Sequence[str] | None,
    mcp_commands: Sequence[str] | None,
) -> None:
    """CodeExecutionDenied when an operator allow-list is set and does not admit the backend.

    ``None`` means the operator set no allow-list (every operator-registered backend
    may run); an empty list admits nothing.
    """
    spec = definition.backend
    if (
        isinstance(spec, PythonBackendSpec)
        and python is not None
        and not _matches(spec.callable, python)
    ):
        raise CodeExecutionDenied(
            f"tool {definition.name!r}: python callable {spec.callable!r} is not in "
            "the allowed_python_backends allow-list",
            hint="a server operator adds a pattern to DAYTWO_ALLOWED_PYTHON_BACKENDS",
        )
    if isinstance(spec, McpBackendSpec) and spec.command and mcp_commands is not None:
        line = shlex.join(spec.command)
        if not _matches(line, mcp_commands):
            raise CodeExecutionDenied(
                f"tool {definition.name!r}: MCP command {line!r} is not in the "
                "allowed_mcp_commands allow-list",
                hint="a server operator adds a pattern to DAYTWO_ALLOWED_MCP_COMMANDS",
            )


def refuse_from_api(definition: ToolDefinition) -> None:
    """CodeExecutionDenied when a tenant (an API key) registers a code-running backend."""
    what = runs_code(definition)
    if what is None:
        return
    raise CodeExecutionDenied(
        f"tool {definition.name!r}: a {what} runs code on the server; only a server "
        "operator may register such a backend (rule: no code execution from the API)",
        hint="over the API use an http backend or an mcp backend with a url; "
        "an operator registers code backends with `daytwo tools register` on the host",
    )


def credential_names(definition: ToolDefinition) -> list[str]:
    """The vault names a definition's backend reads."""
    spec = definition.backend
    auth = spec.auth if isinstance(spec, (HttpBackendSpec, McpBackendSpec)) else None
    if auth is None:
        return []
    return [n for n in (auth.secret, auth.client_secret) if n]


def check_tenant_credentials(definition: ToolDefinition, tenant: str) -> None:
    """PermissionDenied when a tenant's tool reads a credential outside the tenant's vault."""
    for name in credential_names(definition):
        if not name.startswith(f"{tenant}/"):
            raise PermissionDenied(
                f"tool {definition.name!r}: credential {name!r} is not in your tenant's vault",
                hint=f"credentials of tenant {tenant} are named '{tenant}/NAME' "
                f"(a server operator stores them: daytwo tools secret-set {tenant}/NAME)",
            )
