"""Serve the gateway's catalog over MCP (official ``mcp`` SDK): stdio and Streamable HTTP.

Every MCP tool call goes through :meth:`Gateway.call`, so authentication,
permissions, rate limits, validation, adapters and drift checks apply. Over
HTTP the agent sends ``Authorization: Bearer <agent API key>``; over stdio the
key is given once when the server starts (the process is the agent's session).
A key lists and calls only what :meth:`Gateway.catalog_for` gives its principal:
with the gateway's visibility rule, its tenant's tools only (another tenant's tool
answers as a missing one); keys other than agent keys are accepted when the
gateway was given ``principals`` (the server's tenant API keys).

Mounting in FastAPI: ``app.mount("/mcp", mcp_asgi_app(gateway, path="/"))`` and
run the sub-app's lifespan from the parent's::

    mcp_app = mcp_asgi_app(gateway, path="/")
    @asynccontextmanager
    async def lifespan(app):
        async with mcp_app.router.lifespan_context(mcp_app):
            yield
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from daytwo.exceptions import DaytwoError, PermissionDenied
from daytwo.tracing.propagation import attached, context_carrier

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from starlette.applications import Starlette

    from daytwo.gateway.gateway import Gateway

__all__ = ["build_mcp_server", "mcp_asgi_app", "serve_stdio"]


def _bearer(ctx: Any) -> str | None:
    request = getattr(ctx, "request", None)
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    value = headers.get("authorization", "")
    if value.lower().startswith("bearer "):
        return str(value[7:].strip())
    return None


def _trace_carrier(ctx: Any, params: Any) -> dict[str, str]:
    """The trace context the call runs in (the gateway's call runs in a worker thread).

    The MCP SDK's own server span when it made one (it continues the caller's trace
    from ``params._meta``); else the caller's W3C context from ``params._meta``
    (``traceparent``, any transport) or from the HTTP request's headers.
    """
    if trace.get_current_span().get_span_context().is_valid:
        return context_carrier()
    meta = getattr(params, "meta", None)
    if isinstance(meta, dict) and isinstance(meta.get("traceparent"), str):
        return {k: str(meta[k]) for k in ("traceparent", "tracestate") if k in meta}
    headers = getattr(getattr(ctx, "request", None), "headers", None)
    if headers is None:
        return {}
    return {k: str(headers[k]) for k in ("traceparent", "tracestate") if headers.get(k)}


def build_mcp_server(
    gateway: Gateway, *, api_key: str | None = None, require_key: bool = True
) -> Server[Any]:
    """A low-level MCP server whose tools are the gateway's (latest version of each name).

    ``api_key`` is the key used when the transport carries none (stdio); with
    ``require_key`` a call without any key is refused.
    """
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import MCPError

    def key_for(ctx: Any) -> str | None:
        key = _bearer(ctx) or api_key
        if key is None and require_key:
            raise MCPError(-32001, "authentication required: send Authorization: Bearer <key>")
        return key

    def list_sync(key: str | None) -> list[types.Tool]:
        agent = gateway.authenticate(key) if key is not None else None
        tools = []
        for record in gateway.catalog_for(agent):
            d = record.definition
            tools.append(
                types.Tool(
                    name=record.name,
                    description=f"{d.description} [{d.capability} v{d.version}]".strip(),
                    input_schema=d.input_schema,
                )
            )
        return tools

    async def on_list_tools(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        key = key_for(ctx)
        try:
            tools = await anyio.to_thread.run_sync(list_sync, key)
        except PermissionDenied as exc:
            raise MCPError(-32001, str(exc)) from exc
        return types.ListToolsResult(tools=tools)

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        key = key_for(ctx)
        arguments = dict(params.arguments or {})
        carrier = _trace_carrier(ctx, params)

        def run() -> dict[str, Any]:
            # The caller's trace: the gateway's execute_tool span becomes its child.
            with attached(carrier):
                return gateway.call(params.name, arguments, api_key=key).output

        try:
            output = await anyio.to_thread.run_sync(run)
        except DaytwoError as exc:
            text = f"{type(exc).__name__}: {exc}"
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=text)], is_error=True
            )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(output, default=str))],
            structured_content=output,
        )

    return Server(
        "daytwo-gateway",
        version="1",
        instructions="Tools of the daytwo gateway; auth, policies and drift checks apply.",
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


def mcp_asgi_app(
    gateway: Gateway,
    *,
    path: str = "/mcp",
    host: str = "127.0.0.1",
    stateless: bool = True,
    allowed_hosts: list[str] | None = None,
) -> Starlette:
    """A Starlette ASGI app serving the catalog over Streamable HTTP (Bearer keys)."""
    from mcp.server.transport_security import TransportSecuritySettings

    server = build_mcp_server(gateway, require_key=True)
    security = None
    if allowed_hosts is not None:
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=[]
        )
    app = server.streamable_http_app(
        streamable_http_path=path,
        json_response=True,
        stateless_http=stateless,
        host=host,
        transport_security=security,
    )
    app.add_middleware(_BearerAuth, gateway=gateway)
    return app


class _BearerAuth:
    """Answers 401 before any MCP processing unless the request carries a valid key."""

    def __init__(self, app: Any, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import anyio
        from starlette.responses import JSONResponse

        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        value = headers.get("authorization", "")
        key = value[7:].strip() if value.lower().startswith("bearer ") else ""
        problem = "authentication required: send Authorization: Bearer <agent key>"
        if key:
            try:
                await anyio.to_thread.run_sync(self.gateway.authenticate, key)
                problem = ""
            except PermissionDenied as exc:
                problem = exc.message
        if problem:
            response = JSONResponse(
                {"error": "unauthorized", "detail": problem},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def serve_stdio(gateway: Gateway, *, api_key: str | None) -> None:
    """Serve the catalog on stdin/stdout until the client closes it."""
    import anyio
    from mcp.server.stdio import stdio_server

    server = build_mcp_server(gateway, api_key=api_key, require_key=gateway.require_auth)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
