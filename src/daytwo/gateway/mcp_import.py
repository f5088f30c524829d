"""Every tool of an external MCP server as gateway tool definitions (``tools import-mcp``).

The server is asked for its tools once (``tools/list``); each becomes a versioned
tool whose backend is that server (stdio command or Streamable HTTP URL), with the
input schema the server declares, its output schema when it declares one, and a
capability ``<server>.<tool>``. Registering a stdio command starts a process on the
host, so this is a server operator's command (the CLI), never an API call.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from daytwo.exceptions import BackendError, InputError
from daytwo.gateway.contracts import McpBackendSpec, ToolDefinition, parse_definitions

if TYPE_CHECKING:
    from daytwo.gateway.gateway import Gateway

__all__ = ["mcp_definitions"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower() or "mcp"


def _semver(text: str | None) -> str:
    parts = re.findall(r"\d+", text or "")
    return ".".join([*parts, "0", "0", "0"][:3]) if parts else "1.0.0"


def mcp_definitions(
    gateway: Gateway,
    *,
    command: list[str] | None = None,
    url: str | None = None,
    prefix: str = "",
    timeout_s: float = 30.0,
) -> list[ToolDefinition]:
    """The tool definitions of every tool the MCP server offers (nothing registered yet)."""
    import anyio

    from daytwo.gateway.backends import McpBackend

    if bool(command) == bool(url):
        raise InputError(
            "give exactly one of --command (stdio) or --url (Streamable HTTP)",
            hint="e.g. --command 'npx -y @modelcontextprotocol/server-everything'",
        )
    probe = McpBackend(
        McpBackendSpec(tool="", command=command, url=url, timeout_s=timeout_s),
        guard=gateway.guard,
        vault=gateway.vault,
        tokens=gateway.tokens,
        client=gateway._client(),
    )

    async def listing() -> tuple[Any, list[Any]]:
        with anyio.fail_after(timeout_s):
            async with probe._client() as client:
                tools = await client.list_tools()
                return getattr(client, "server_info", None), list(tools.tools)

    try:
        server, tools = anyio.run(listing)
    except (OSError, TimeoutError, RuntimeError, ExceptionGroup) as exc:
        raise BackendError(
            f"could not list the MCP server's tools: {exc}",
            hint="check the command or URL (and that the server speaks MCP)",
        ) from exc
    if not tools:
        raise InputError("the MCP server offers no tools", hint="check the server")
    server_name = _slug(str(getattr(server, "name", None) or "mcp"))
    version = _semver(getattr(server, "version", None))
    items = []
    for tool in tools:
        output = getattr(tool, "output_schema", None) or getattr(tool, "outputSchema", None)
        schema = getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None)
        items.append(
            {
                "name": f"{prefix}{tool.name}",
                "capability": f"{server_name}.{_slug(tool.name)}",
                "version": version,
                "description": str(tool.description or "")[:500],
                "input_schema": dict(schema or {"type": "object"}),
                "output_schema": dict(output or {"type": "object"}),
                "backend": {
                    "type": "mcp",
                    "tool": tool.name,
                    "command": command,
                    "url": url,
                    "timeout_s": timeout_s,
                },
            }
        )
    return parse_definitions(items, source="MCP server")
