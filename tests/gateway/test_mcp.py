"""MCP: the catalog served over Streamable HTTP and stdio; MCP servers as tool backends."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from daytwo.exceptions import BackendError
from daytwo.gateway import Gateway
from daytwo.gateway.mcp_server import mcp_asgi_app
from daytwo.gateway.samples import register_samples
from daytwo.store import Store

HERE = Path(__file__).parent


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def _session(url: str, key: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers))
    out: dict[str, Any] = {}
    async with Client(transport, mode="legacy") as client:
        out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        ok = await client.call_tool("orders_status_cached", {"order_id": "A-1001"})
        out["ok"] = (ok.is_error, ok.structured_content)
        denied = await client.call_tool("orders_status_live", {"order_id": "A-1001"})
        out["denied"] = (denied.is_error, _text(denied))
        bad = await client.call_tool("orders_status_cached", {"order_id": "zzz"})
        out["bad"] = (bad.is_error, _text(bad))
    return out


def test_catalog_over_streamable_http_with_auth_and_policies(
    gateway: Gateway, asgi_server: Any
) -> None:
    register_samples(gateway)
    key = gateway.create_agent("support", ["orders_status_cached"])
    server = asgi_server(mcp_asgi_app(gateway))
    out = anyio.run(_session, server.url + "/mcp", key)
    assert out["tools"] == ["orders_status_cached"]
    is_error, data = out["ok"]
    assert not is_error
    assert data["status"] == "shipped"
    assert out["denied"][0]
    assert "PermissionDenied" in out["denied"][1]
    assert "may not call orders_status_live" in out["denied"][1]
    assert out["bad"][0]
    assert "ContractViolation" in out["bad"][1]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    hdrs = {"accept": "application/json, text/event-stream"}
    anonymous = httpx.post(server.url + "/mcp", json=body, headers=hdrs)
    assert anonymous.status_code == 401
    assert "authentication required" in anonymous.json()["detail"]
    forged = httpx.post(
        server.url + "/mcp", json=body, headers={**hdrs, "authorization": "Bearer dt_forged"}
    )
    assert forged.status_code == 401
    assert "not valid" in forged.json()["detail"]


@pytest.mark.slow
def test_catalog_over_stdio_via_the_cli(sqlite_store: Store, sqlite_url: str) -> None:
    gw = Gateway(sqlite_store)
    register_samples(gw)
    key = gw.create_agent("support", ["orders_status_cached"])
    # An agent of another tenant: the host's tools are tenant default's, not its own.
    other = gw.create_agent("globex-bot", ["*"], tenant="globex")
    gw.close()
    env = {**os.environ, "DAYTWO_DATABASE_URL": sqlite_url}

    async def session(api_key: str) -> dict[str, Any]:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "daytwo", "tools", "mcp-serve", "--api-key", api_key],
            env=env,
        )
        async with Client(params, mode="legacy") as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            ok = await client.call_tool("orders_status_cached", {"order_id": "A-1003"})
            denied = await client.call_tool("orders_status_live", {"order_id": "A-1003"})
            return {
                "tools": tools,
                "ok": ok.structured_content or _text(ok),
                "denied": _text(denied),
            }

    out = anyio.run(session, key)
    assert out["tools"] == ["orders_status_cached"]
    assert out["ok"]["status"] == "delivered"
    assert "may not call orders_status_live" in out["denied"]
    out = anyio.run(session, other)
    assert out["tools"] == []
    assert out["ok"].startswith("ToolNotFound: unknown tool 'orders_status_cached'")
    assert "unknown tool 'orders_status_live'" in out["denied"]


def _mcp_tool(**backend: Any) -> dict[str, Any]:
    return {
        "name": "risk",
        "capability": "risk.score",
        "version": "1.0.0",
        "input_schema": {
            "type": "object",
            "required": ["account"],
            "properties": {"account": {"type": "string"}},
        },
        "expectations": {"risk_score": {"type": "number", "minimum": 0, "maximum": 1}},
        "backend": {"type": "mcp", "tool": "risk_score", **backend},
    }


def test_mcp_backend_over_streamable_http(gateway: Gateway, asgi_server: Any) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import mcp_backend_server
    finally:
        sys.path.remove(str(HERE))
    app = mcp_backend_server.server.streamable_http_app(json_response=True, stateless_http=True)
    server = asgi_server(app)
    gateway.register(_mcp_tool(url=server.url + "/mcp"))
    out = gateway.call("risk", {"account": "acme"})
    assert out.output == {"account": "acme", "risk_score": (sum(map(ord, "acme")) % 100) / 100}
    broken = _mcp_tool(url=server.url + "/mcp") | {"name": "broken"}
    broken["backend"]["tool"] = "broken"
    gateway.register(broken)
    with pytest.raises(BackendError, match=r"MCP tool .broken. returned an error"):
        gateway.call("broken", {"account": "acme"})


@pytest.mark.slow
def test_mcp_backend_over_stdio(gateway: Gateway) -> None:
    gateway.register(
        _mcp_tool(command=[sys.executable, str(HERE / "mcp_backend_server.py"), "stdio"])
    )
    out = gateway.call("risk", {"account": "zeta"})
    assert out.output["account"] == "zeta"
    assert 0 <= out.output["risk_score"] <= 1
    who = _mcp_tool(command=[sys.executable, str(HERE / "mcp_backend_server.py"), "stdio"])
    who |= {"name": "whoami", "input_schema": {"type": "object"}, "expectations": {}}
    who["backend"]["tool"] = "whoami"
    gateway.register(who)
    first = gateway.call("whoami", {}).output["pid"]
    started = time.perf_counter()
    assert gateway.call("whoami", {}).output["pid"] == first  # the session stays up
    assert time.perf_counter() - started < 1.0
    gateway.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(first, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the MCP server process outlived gateway.close()")


def test_mcp_backend_needs_command_or_url(gateway: Gateway) -> None:
    from daytwo.exceptions import InputError

    gateway.register(_mcp_tool())
    with pytest.raises(InputError, match="exactly one of command"):
        gateway.call("risk", {"account": "a"})


def test_import_mcp_registers_every_tool_of_a_server(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tools import-mcp --command ...`: each tool of the stdio server, callable at once."""
    import json as _json

    from daytwo.cli.main import run

    monkeypatch.setenv("DAYTWO_DATABASE_URL", gateway.store.url)
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    cmd = f"{sys.executable} {HERE / 'mcp_backend_server.py'} stdio"
    assert run(["tools", "import-mcp", "--command", cmd, "--prefix", "rb_", "--dry-run"]) == 0
    assert gateway.tools() == []  # a dry run registers nothing
    assert run(["tools", "import-mcp", "--command", cmd, "--prefix", "rb_", "--json"]) == 0
    names = sorted(r.name for r in gateway.tools())
    assert names == [
        "rb_broken",
        "rb_request_meta",
        "rb_risk_score",
        "rb_summary",
        "rb_summary_json",
        "rb_whoami",
    ]
    score = gateway.call("rb_risk_score", {"account": "acme"}).output
    assert score["account"] == "acme"
    assert 0 <= score["risk_score"] <= 1
    assert _json.dumps(gateway.tools()[0].definition.input_schema)
    assert run(["tools", "import-mcp"]) == 2  # neither --command nor --url
