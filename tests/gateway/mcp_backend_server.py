"""An external MCP server the gateway uses as a backend (stdio when run as a script)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("risk-backend")


@server.tool()
def risk_score(account: str) -> dict[str, Any]:
    """Risk of an account between 0 and 1."""
    return {"account": account, "risk_score": (sum(map(ord, account)) % 100) / 100}


@server.tool()
def whoami() -> dict[str, Any]:
    """The server's process id."""
    return {"pid": os.getpid()}


@server.tool()
def request_meta(ctx: Context) -> dict[str, Any]:
    """The ``_meta`` of the request that called this tool, as the server received it."""
    meta = ctx.request_context.meta
    raw = meta.model_dump(by_alias=True) if hasattr(meta, "model_dump") else dict(meta or {})
    return {"meta": {k: v for k, v in raw.items() if v is not None}}


@server.tool(structured_output=False)
def summary(account: str) -> str:
    """A sentence about the account (text content only)."""
    return f"{account} looks fine"


@server.tool(structured_output=False)
def summary_json(account: str) -> str:
    """The account's record as JSON text (text content only)."""
    return json.dumps({"account": account, "pid": os.getpid()})


@server.tool()
def broken(account: str) -> dict[str, Any]:
    """Always fails."""
    raise RuntimeError(f"no data for {account}")


if __name__ == "__main__":
    if sys.argv[1:] == ["stdio"]:
        server.run("stdio")
